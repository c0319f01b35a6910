package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/promproxy/promproxy"

// goFiles returns every Go file of the repository outside gen/.
func goFiles(t *testing.T) []string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && (rel == "gen" || rel == "tools" || strings.HasPrefix(d.Name(), ".")) && rel != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestLayering enforces that the proxy (server/) and the agent (client/)
// never import each other, and that library packages stay free of the
// command-line layer; shared code belongs in internal/.
func TestLayering(t *testing.T) {
	t.Parallel()
	forbidden := map[string][]string{
		"server/": {module + "/client", module + "/internal/cli"},
		"client/": {module + "/server", module + "/internal/cli"},
	}
	for _, f := range goFiles(t) {
		for dir, bans := range forbidden {
			if !strings.HasPrefix(f, dir) || strings.HasSuffix(f, "_test.go") {
				continue
			}
			for _, imp := range imports(t, f) {
				for _, ban := range bans {
					if imp.path == ban || strings.HasPrefix(imp.path, ban+"/") {
						t.Errorf("%s imports %s: %s must not depend on it", f, imp.path, dir)
					}
				}
			}
		}
	}
}

// TestGeneratedImportAlias keeps one name for the generated package
// everywhere, so code reads the same in every file.
func TestGeneratedImportAlias(t *testing.T) {
	t.Parallel()
	for _, f := range goFiles(t) {
		for _, imp := range imports(t, f) {
			if imp.path == module+"/gen/promproxy/v1" && imp.name != "promproxyv1" {
				t.Errorf("%s imports %s as %q, want promproxyv1", f, imp.path, imp.name)
			}
		}
	}
}

type importSpec struct{ name, path string }

func imports(t *testing.T, rel string) []importSpec {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("../..", rel))
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), rel, src, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var out []importSpec
	for _, s := range f.Imports {
		p, _ := strconv.Unquote(s.Path.Value)
		name := ""
		if s.Name != nil {
			name = s.Name.Name
		}
		out = append(out, importSpec{name, p})
	}
	return out
}
