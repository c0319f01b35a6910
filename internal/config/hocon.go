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

// Unmarshal parses HOCON into a nested map.
func (h HOCON) Unmarshal(b []byte) (map[string]any, error) {
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
				return nil, err
			}
			out := toGo(c.GetRoot()).(map[string]any)
			for name := range env {
				delete(out, name)
			}
			return out, nil
		}
	}
	if c, err = c.Resolve(); err != nil {
		return nil, err
	}
	return toGo(c.GetRoot()).(map[string]any), nil
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
