package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/configuration.md")

const docsPath = "../../docs/configuration.md"

// TestDocsMatchTheSchema fails when docs/configuration.md's reference
// tables differ from what the schema generates; run
// `go test ./internal/config -run TestDocs -update` to regenerate them.
func TestDocsMatchTheSchema(t *testing.T) {
	raw, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, part := range []struct {
		name     string
		s        *Schema
		defaults any
	}{
		{"proxy", ProxySchema(), DefaultProxy()},
		{"agent", AgentSchema(), DefaultAgent()},
	} {
		begin := "<!-- BEGIN GENERATED " + part.name + " -->\n"
		end := "<!-- END GENERATED " + part.name + " -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("%s: markers %q and %q not found", docsPath, begin, end)
		}
		want := part.s.Markdown(part.defaults)
		if got := doc[i+len(begin) : j]; got != want {
			if !*update {
				t.Errorf("%s: the %s reference is out of date; run go test ./internal/config -run TestDocs -update", docsPath, part.name)
				continue
			}
			doc = doc[:i+len(begin)] + want + doc[j:]
		}
	}
	if *update {
		if err := os.WriteFile(filepath.Clean(docsPath), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEveryFlagAndEnvIsInTheUsage guards the usage text the same way.
func TestEveryFlagAndEnvIsInTheUsage(t *testing.T) {
	t.Parallel()
	for _, s := range []*Schema{ProxySchema(), AgentSchema()} {
		var b strings.Builder
		if s.Program == "proxy" {
			s.WriteUsage(&b, DefaultProxy())
		} else {
			s.WriteUsage(&b, DefaultAgent())
		}
		usage := b.String()
		for _, f := range s.Fields {
			if f.Flag == "" {
				continue
			}
			if !strings.Contains(usage, "--"+f.Flag+" ") && !strings.Contains(usage, "--"+f.Flag+"\t") && !strings.Contains(usage, "--"+f.Flag+"  ") {
				t.Errorf("%s usage lacks --%s", s.Program, f.Flag)
			}
			if f.Env != "" && !strings.Contains(usage, f.Env) {
				t.Errorf("%s usage lacks %s", s.Program, f.Env)
			}
		}
	}
}

// TestFlagsAndEnvsAreUnique checks the tags: two keys of one program must
// never share a flag, short flag or environment variable.
func TestFlagsAndEnvsAreUnique(t *testing.T) {
	t.Parallel()
	for _, s := range []*Schema{ProxySchema(), AgentSchema()} {
		seen := map[string]string{"--config": "", "-c": "", "-v": "", "-u": "", "-h": "", "--version": "", "--usage": "", "--help": ""}
		for _, f := range s.Fields {
			for _, name := range []string{prefixed("--", f.Flag), prefixed("-", f.Short), prefixed("$", f.Env)} {
				if name == "" {
					continue
				}
				if other, dup := seen[name]; dup {
					t.Errorf("%s: %s is used by %s and %q", s.Program, name, f.Key, other)
				}
				seen[name] = f.Key
			}
		}
	}
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
