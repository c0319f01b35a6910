package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Field describes one configuration key: where it lives in the typed
// struct, how it is set from the command line and the environment, and
// what it means. The schema is read from struct tags, so the loader, the
// validator, --usage and docs/configuration.md all work from one table.
type Field struct {
	// Key is the full dotted key, e.g. proxy.http.port.
	Key string
	// Index is the reflect field path from the section struct.
	Index []int
	// Type is the field's Go type.
	Type reflect.Type
	// Flag and Short are the long and one-letter flag names, if any.
	Flag, Short string
	// Env is the environment variable, if any.
	Env string
	// Help says what the key does.
	Help string
	// Check names the value check applied by Validate.
	Check string
	// Group is the --usage group ("" for the main one).
	Group string
	// Compat, when set, says why the key is accepted but has no effect.
	Compat string
	// New marks keys the Kotlin programs do not have.
	New bool
	// Secret values are never shown in messages.
	Secret bool
	// Path marks file paths, resolved against the config file's directory.
	Path bool
}

// Schema is the set of keys of one program.
type Schema struct {
	// Program is "proxy" or "agent", the config file section it reads.
	Program string
	// Other is the section of the other program, which it ignores.
	Other string
	// Fields are the leaf keys, in declaration order.
	Fields []Field
	byKey  map[string]*Field
	root   reflect.Type
	all    []string // every key, sections and list elements included (suggest)
}

// ProxySchema is the schema of prometheus-proxy.
func ProxySchema() *Schema { return newSchema("proxy", "agent", reflect.TypeFor[Proxy]()) }

// AgentSchema is the schema of prometheus-agent.
func AgentSchema() *Schema { return newSchema("agent", "proxy", reflect.TypeFor[Agent]()) }

func newSchema(program, other string, t reflect.Type) *Schema {
	s := &Schema{Program: program, Other: other, root: t, byKey: map[string]*Field{}}
	s.collect(t, program, nil)
	for i := range s.Fields {
		s.byKey[s.Fields[i].Key] = &s.Fields[i]
	}
	s.all = collectAllKeys(program, t)
	return s
}

// isLeaf reports whether a struct-typed value is set as a whole rather
// than walked key by key.
func isLeaf(t reflect.Type) bool { return t.Kind() != reflect.Struct }

func (s *Schema) collect(t reflect.Type, prefix string, index []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		name, squash := koanfName(sf)
		idx := append(append([]int(nil), index...), i)
		if squash {
			s.collect(sf.Type, prefix, idx)
			continue
		}
		key := prefix + "." + name
		if !isLeaf(sf.Type) {
			s.collect(sf.Type, key, idx)
			continue
		}
		s.Fields = append(s.Fields, Field{
			Key: key, Index: idx, Type: sf.Type,
			Flag: sf.Tag.Get("flag"), Short: sf.Tag.Get("short"), Env: sf.Tag.Get("env"),
			Help: sf.Tag.Get("help"), Check: sf.Tag.Get("check"), Group: sf.Tag.Get("group"),
			Compat: sf.Tag.Get("compat"), New: sf.Tag.Get("new") == "true",
			Secret: sf.Tag.Get("secret") == "true", Path: sf.Tag.Get("path") == "true",
		})
	}
}

// koanfName returns a struct field's key segment and whether its fields
// are inlined into the parent.
func koanfName(sf reflect.StructField) (string, bool) {
	tag := sf.Tag.Get("koanf")
	if strings.HasSuffix(tag, ",squash") {
		return "", true
	}
	if tag == "" {
		panic(fmt.Sprintf("config: field %s has no koanf tag", sf.Name))
	}
	return tag, false
}

// Field returns the field of a full key, or nil.
func (s *Schema) Field(key string) *Field { return s.byKey[key] }

// Keys returns every leaf key, sorted.
func (s *Schema) Keys() []string {
	keys := make([]string, 0, len(s.Fields))
	for _, f := range s.Fields {
		keys = append(keys, f.Key)
	}
	sort.Strings(keys)
	return keys
}

// ByFlag returns the field set by a long or short flag name.
func (s *Schema) ByFlag(name string) *Field {
	for i := range s.Fields {
		if f := &s.Fields[i]; f.Flag == name || (f.Short != "" && f.Short == name) {
			return f
		}
	}
	return nil
}

// structFields lists the keys directly under a struct type, with squashed
// fields inlined, for the unknown-key walk.
func structFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, squash := koanfName(sf)
		if squash {
			for k, v := range structFields(sf.Type) {
				out[k] = v
			}
			continue
		}
		out[name] = sf
	}
	return out
}

// Value returns the value of a field in a section struct (a Proxy or an
// Agent, or a pointer to one).
func (f *Field) Value(section any) reflect.Value {
	v := reflect.ValueOf(section)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return v.FieldByIndex(f.Index)
}
