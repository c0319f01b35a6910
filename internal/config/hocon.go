package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gurkankaymak/hocon"
)

// HOCON is a koanf.Parser for HOCON, the format of the Kotlin programs'
// .conf files: comments, unquoted keys and values, dotted keys, includes,
// substitutions and ${?ENV} fallbacks all work as they did there.
type HOCON struct {
	// Path is the file the bytes were read from, if any. The library
	// resolves includes only against a file it opens itself, so when Path
	// is set the file is parsed from there (the bytes are the same file's).
	Path string
	// Env resolves ${VAR} and ${?VAR} substitutions that the file itself
	// does not define. Nil means the process environment.
	Env func(string) (string, bool)
}

// substRE finds the names of substitutions in an unresolved tree.
var substRE = regexp.MustCompile(`\$\{\??\s*([^}\s]+)\s*\}`)

// hoconParseTimeout bounds one parse. The HOCON library can loop forever
// on some malformed input (an unclosed list holding a concatenation, such as
// `a = [1 2`); a program must fail with a message instead of hanging at
// startup. The goroutine of a parse that timed out is abandoned, which is
// acceptable because the program is about to exit with the error.
const hoconParseTimeout = 3 * time.Second

// Unmarshal parses HOCON into a nested map.
func (h HOCON) Unmarshal(b []byte) (map[string]any, error) {
	if err := checkBrackets(b); err != nil {
		return nil, err
	}
	type result struct {
		m   map[string]any
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := h.unmarshal(b)
		done <- result{m, err}
	}()
	t := time.NewTimer(hoconParseTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.m, r.err
	case <-t.C:
		return nil, fmt.Errorf("the HOCON parser did not finish within %v: the file is malformed (look for an unclosed list or object)", hoconParseTimeout)
	}
}

// checkBrackets reports the first unbalanced [ ] or { } outside strings and
// comments, with its line, before the library sees the file.
func checkBrackets(b []byte) error {
	type open struct {
		c    byte
		line int
	}
	var stack []open
	line := 1
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\n':
			line++
		case c == '#' || (c == '/' && i+1 < len(b) && b[i+1] == '/'):
			for i < len(b) && b[i] != '\n' {
				i++
			}
			i-- // let the newline be counted
		case c == '"' && i+2 < len(b) && b[i+1] == '"' && b[i+2] == '"':
			end := strings.Index(string(b[i+3:]), `"""`)
			if end < 0 {
				return fmt.Errorf("line %d: a \"\"\" string is never closed", line)
			}
			line += strings.Count(string(b[i:i+3+end]), "\n")
			i += 3 + end + 2
		case c == '"':
			j := i + 1
			for ; j < len(b) && b[j] != '"' && b[j] != '\n'; j++ {
				if b[j] == '\\' {
					j++
				}
			}
			if j >= len(b) || b[j] != '"' {
				return fmt.Errorf("line %d: a quoted string is never closed", line)
			}
			i = j
		case c == '[' || c == '{':
			stack = append(stack, open{c, line})
		case c == ']' || c == '}':
			want := byte('[')
			if c == '}' {
				want = '{'
			}
			if len(stack) == 0 || stack[len(stack)-1].c != want {
				return fmt.Errorf("line %d: %q has no matching opening bracket", line, c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		o := stack[len(stack)-1]
		return fmt.Errorf("line %d: %q is never closed", o.line, o.c)
	}
	return nil
}

func (h HOCON) unmarshal(b []byte) (map[string]any, error) {
	var (
		c   *hocon.Config
		err error
	)
	if h.Path != "" {
		c, err = hocon.ParseResourceUnresolved(h.Path)
	} else {
		c, err = hocon.ParseStringUnresolved(string(b))
	}
	if err != nil {
		return nil, err
	}
	root, ok := c.GetRoot().(hocon.Object)
	if !ok {
		return nil, errors.New("the file's top level must be an object, not a list")
	}
	if h.Env != nil {
		// The library would read the process environment itself; handing it
		// the variables as a fallback object lets the caller choose where
		// they come from (tests inject them). Values in the file still win.
		env := hocon.Object{}
		for _, m := range substRE.FindAllStringSubmatch(c.String(), -1) {
			name := m[1]
			if _, inFile := root[name]; inFile {
				continue
			}
			if v, ok := h.Env(name); ok {
				env[name] = hocon.String(v)
			}
		}
		if len(env) > 0 {
			resolved := c.WithFallback(env.ToConfig())
			if c, err = resolved.Resolve(); err != nil {
				return nil, stableResolveErr(err)
			}
			out := toGo(c.GetRoot()).(map[string]any)
			for name := range env {
				delete(out, name)
			}
			return out, nil
		}
	}
	if c, err = c.Resolve(); err != nil {
		return nil, stableResolveErr(err)
	}
	return toGo(c.GetRoot()).(map[string]any), nil
}

// stableResolveErr makes the library's cycle error the same on every run:
// it names whichever key of the cycle its map iteration reached first, and
// a configuration error must not change from one start to the next.
func stableResolveErr(err error) error {
	if strings.Contains(err.Error(), "substitution cycle") {
		return errors.New("the file's ${...} substitutions refer to each other in a cycle")
	}
	return err
}

// Marshal is not supported: configuration is only ever read.
func (HOCON) Marshal(map[string]any) ([]byte, error) {
	return nil, errors.New("config: writing HOCON is not supported")
}

// toGo converts a resolved HOCON tree to the plain values koanf expects.
func toGo(v hocon.Value) any {
	switch x := v.(type) {
	case nil:
		return nil
	case hocon.Object:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = toGo(e)
		}
		return m
	case hocon.Array:
		l := make([]any, 0, len(x))
		for _, e := range x {
			l = append(l, toGo(e))
		}
		return l
	case hocon.String:
		return unescape(string(x))
	case hocon.Int:
		return int(x)
	case hocon.Float64:
		return float64(x)
	case hocon.Float32:
		return float64(x)
	case hocon.Boolean:
		return bool(x)
	case hocon.Null:
		return nil
	case hocon.Duration:
		return time.Duration(x).String()
	}
	return fmt.Sprint(v)
}

// unescape applies the JSON escapes of a quoted HOCON string, which the
// library leaves in place: the Kotlin agent's labels are written as
// "{\"key\": \"value\"}". Unquoted HOCON strings cannot hold a backslash,
// so only quoted ones are affected.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + s + `"`); err == nil {
		return u
	}
	return s
}
