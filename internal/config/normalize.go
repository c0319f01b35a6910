package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/knadh/koanf/maps"
)

// layer is one source of configuration after normalisation: the program's
// section as a nested map of typed values, which key came from where, and
// what was wrong with it.
type layer struct {
	values  map[string]any
	sources map[string]string
	errs    []string
}

// normalizer checks one source against the schema: every key must exist,
// every value must have the field's type. It converts values to that type
// so that decoding cannot fail later, and so that a wrong value is reported
// with its key and its source rather than by the decoder.
type normalizer struct {
	s     *Schema
	srcOf func(key string) string
	out   *layer
}

// normalize walks a raw nested map (the whole file, or the keys from the
// environment, flags or -D) and returns the program's layer.
func (s *Schema) normalize(raw map[string]any, srcOf func(string) string) *layer {
	n := &normalizer{s: s, srcOf: srcOf, out: &layer{values: map[string]any{}, sources: map[string]string{}}}
	for _, k := range sortedKeys(raw) {
		switch k {
		case s.Program:
			sec, ok := raw[k].(map[string]any)
			if raw[k] == nil {
				continue
			}
			if !ok {
				n.errorf(k, raw[k], "must be a section of keys, not %s", describe(raw[k]))
				continue
			}
			n.out.values = n.walkStruct(s.root, k, sec)
		case s.Other:
			// A file shared by both programs: the other one's section is its
			// business, checked when that program reads the file.
		default:
			n.unknown(k, "")
		}
	}
	return n.out
}

func (n *normalizer) walkStruct(t reflect.Type, prefix string, m map[string]any) map[string]any {
	m = nest(m)
	fields := structFields(t)
	out := map[string]any{}
	for _, k := range sortedKeys(m) {
		key := prefix + "." + k
		sf, ok := fields[k]
		if !ok {
			n.unknown(key, prefix)
			continue
		}
		v := m[k]
		if v == nil {
			continue // an empty value (YAML "key:") leaves the key unset
		}
		if !isLeaf(sf.Type) {
			sub, ok := v.(map[string]any)
			if !ok {
				n.errorf(key, v, "must be a section of keys, not %s", describe(v))
				continue
			}
			out[k] = n.walkStruct(sf.Type, key, sub)
			continue
		}
		if cv, ok := n.convert(sf.Type, key, v); ok {
			out[k] = cv
			if !strings.Contains(prefix, "[") {
				n.out.sources[key] = n.srcOf(key)
			}
		}
	}
	return out
}

// convert returns v as a value of type t, or reports why it cannot be.
func (n *normalizer) convert(t reflect.Type, key string, v any) (any, bool) {
	fail := func(format string, args ...any) (any, bool) {
		n.errorf(key, v, format, args...)
		return nil, false
	}
	switch t.Kind() {
	case reflect.Int:
		i, err := toInt(v)
		if err != nil {
			return fail("%v", err)
		}
		return i, true
	case reflect.Bool:
		b, err := toBool(v)
		if err != nil {
			return fail("%v", err)
		}
		return b, true
	case reflect.String:
		s, err := toString(v)
		if err != nil {
			return fail("%v", err)
		}
		return s, true
	case reflect.Map: // labels
		m, err := toStringMap(v)
		if err != nil {
			return fail("%v", err)
		}
		return m, true
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			return fail("must be a list, not %s", describe(v))
		}
		elem := t.Elem()
		if elem.Kind() == reflect.Struct {
			out := make([]any, 0, len(list))
			for i, e := range list {
				ek := fmt.Sprintf("%s[%d]", key, i)
				m, ok := e.(map[string]any)
				if !ok {
					n.errorf(ek, e, "must be a section of keys, not %s", describe(e))
					continue
				}
				out = append(out, n.walkStruct(elem, ek, m))
			}
			return out, true
		}
		out := make([]string, 0, len(list))
		for i, e := range list {
			s, err := toString(e)
			if err != nil {
				n.errorf(fmt.Sprintf("%s[%d]", key, i), e, "%v", err)
				continue
			}
			out = append(out, s)
		}
		return out, true
	}
	panic(fmt.Sprintf("config: no conversion to %v for %s", t, key))
}

func (n *normalizer) errorf(key string, v any, format string, args ...any) {
	shown := showValue(v, n.s.isSecret(key))
	n.out.errs = append(n.out.errs, fmt.Sprintf("%s = %s: %s (%s)", key, shown, fmt.Sprintf(format, args...), n.srcOf(key)))
}

// isSecret reports whether key's value must never be shown: tokens and
// passwords, including those inside list entries such as proxy.auth[0].token.
func (s *Schema) isSecret(key string) bool {
	if f := s.Field(key); f != nil {
		return f.Secret
	}
	return strings.HasSuffix(key, ".token")
}

func (n *normalizer) unknown(key, parent string) {
	msg := fmt.Sprintf("unknown key %q (%s)", key, n.srcOf(key))
	if s := n.s.suggest(key, parent); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	n.out.errs = append(n.out.errs, msg)
}

// nest turns dotted keys ("admin.enabled: true", as the Kotlin programs'
// files and -D write them) into nested sections, in every format.
func nest(m map[string]any) map[string]any {
	for k := range m {
		if strings.Contains(k, ".") {
			flat, _ := maps.Flatten(m, nil, ".")
			return maps.Unflatten(flat, ".")
		}
	}
	return m
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		if x > math.MaxInt32 || x < math.MinInt32 {
			return 0, fmt.Errorf("out of range")
		}
		return int(x), nil
	case uint64:
		if x > math.MaxInt32 {
			return 0, fmt.Errorf("out of range")
		}
		return int(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
			return 0, fmt.Errorf("not a whole number")
		}
		return int(x), nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("not a whole number")
		}
		return i, nil
	}
	return 0, fmt.Errorf("not a whole number but %s", describe(v))
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		// The spellings HOCON accepts, as the Kotlin programs did.
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "true", "yes", "on", "1":
			return true, nil
		case "false", "no", "off", "0":
			return false, nil
		}
	}
	return false, fmt.Errorf("not true or false")
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int, int64, uint64, bool:
		return fmt.Sprint(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("must be a single value, not %s", describe(v))
}

// toStringMap accepts labels as a map or, as the Kotlin agent's examples
// write them, as a JSON object in a string.
func toStringMap(v any) (map[string]string, error) {
	var m map[string]any
	switch x := v.(type) {
	case map[string]any:
		m = x
	case string:
		if strings.TrimSpace(x) == "" {
			return map[string]string{}, nil
		}
		if err := json.Unmarshal([]byte(x), &m); err != nil || m == nil {
			return nil, fmt.Errorf("not a map nor a JSON object in a string")
		}
	default:
		return nil, fmt.Errorf("must be a map or a JSON object in a string, not %s", describe(v))
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		s, err := toString(e)
		if err != nil {
			return nil, fmt.Errorf("label %q %v", k, err)
		}
		out[k] = s
	}
	return out, nil
}

func describe(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a section"
	case []any:
		return "a list"
	case nil:
		return "empty"
	}
	return "a single value"
}

// showValue prints a value for an error message, hiding secrets.
func showValue(v any, secret bool) string {
	if secret {
		return "<redacted>"
	}
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "{...}"
	case []any:
		return "[...]"
	}
	return fmt.Sprint(v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
