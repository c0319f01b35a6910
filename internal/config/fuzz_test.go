package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzFormats are the file extensions a fuzzed config is written with.
var fuzzFormats = []string{".yaml", ".toml", ".json", ".conf"}

// FuzzLoad feeds arbitrary files in every supported format to both
// programs' loaders. A config file is operator input, often generated or
// templated: whatever it holds, loading must end in a configuration that
// validates or in an error that says what is wrong, never in a panic, and
// the same file must always load the same way.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"full.yaml", "full.toml", "full.json", "full.conf", "anchor-main.conf"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b, uint8(formatIndex(name)), false)
			f.Add(b, uint8(formatIndex(name)), true)
		}
	}
	f.Add([]byte("proxy:\n  http:\n    port: 0\n"), uint8(0), false)
	f.Add([]byte("agent { pathConfigs: [{ name: a, path: a, url: \"http://x/metrics\" }] }"), uint8(3), true)
	f.Add([]byte("proxy.http.port = ${?NOPE}\n"), uint8(3), false)
	f.Add([]byte("a = ${b}\nb = ${a}\n"), uint8(3), false)
	f.Add([]byte("{\"proxy\": {\"http\": {\"port\": -1}}}"), uint8(2), false)
	f.Fuzz(func(t *testing.T, data []byte, format uint8, agent bool) {
		file := filepath.Join(t.TempDir(), "fuzz"+fuzzFormats[int(format)%len(fuzzFormats)])
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		in := Input{Args: []string{"--config", file}}
		first := within(t, data, func() error { return loadErr(t, in, agent) })
		if again := loadErr(t, in, agent); (first == nil) != (again == nil) || (first != nil && first.Error() != again.Error()) {
			t.Fatalf("the same file loaded differently: %v, then %v", first, again)
		}
		if first == nil {
			return
		}
		if strings.TrimSpace(first.Error()) == "" {
			t.Fatal("an empty error message")
		}
		var ce *Error
		if errors.As(first, &ce) && len(ce.Problems) == 0 {
			t.Fatal("an invalid configuration with no problem named")
		}
	})
}

func formatIndex(name string) int {
	for i, ext := range fuzzFormats {
		if strings.HasSuffix(name, ext) {
			return i
		}
	}
	return 0
}

// within runs load and fails the test if it has not returned after a few
// seconds: a parser that loops forever on a malformed file hangs the
// program at startup with no message at all, which is worse than any error.
func within(t *testing.T, input []byte, load func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- load() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("loading did not finish within 5s on %q", input)
		return nil
	}
}

// loadErr loads in with the proxy's or the agent's loader.
func loadErr(t *testing.T, in Input, agent bool) error {
	t.Helper()
	ctx := context.Background()
	if agent {
		_, _, err := LoadAgent(ctx, in)
		return err
	}
	_, _, err := LoadProxy(ctx, in)
	return err
}

// FuzzHOCON feeds arbitrary text to the HOCON parser, the most intricate of
// the formats (substitutions, includes, concatenation): it must return a
// map or an error, never panic.
func FuzzHOCON(f *testing.F) {
	for _, s := range []string{
		"a = 1", "a { b = ${a} }", "a = ${?X}", "a = [1, 2", "a = \"\\u00zz\"", "include \"nope.conf\"",
		"a = ${a}", "a += 1", "a = 1\na = { b = 2 }", "\"\" = 1", "a.b.c = x y z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		env := func(name string) (string, bool) { return "env-" + name, strings.HasPrefix(name, "E") }
		within(t, []byte(s), func() error {
			_, err := HOCON{Env: env}.Unmarshal([]byte(s))
			return err
		})
	})
}
