package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/knadh/koanf/maps"
)

// defineLayer turns -Dkey=value pairs into a layer. Unlike a shared config
// file, a -D on this program's command line is meant for this program, so
// a key of the other program is an error too.
func (s *Schema) defineLayer(defs [][2]string) *layer {
	flat := map[string]any{}
	var errs []string
	for _, d := range defs {
		key := d[0]
		if strings.HasPrefix(key, s.Other+".") {
			errs = append(errs, fmt.Sprintf("-D%s: %s.* keys belong to prometheus-%s; prometheus-%s reads only %s.* keys", key, s.Other, s.Other, s.Program, s.Program))
			continue
		}
		if f := s.Field(key); f != nil && (f.Type.Kind() == reflect.Slice || f.Type.Kind() == reflect.Map) {
			errs = append(errs, fmt.Sprintf("-D%s: %s is a list and can only be set in a config file", key, key))
			continue
		}
		flat[key] = d[1]
	}
	l := s.normalize(unflatten(flat), func(k string) string { return "-D" + k })
	l.errs = append(errs, l.errs...)
	return l
}

// envLayer reads the environment variables of the schema. An empty
// variable counts as unset, as env files often hold empty placeholders.
func (s *Schema) envLayer(env func(string) (string, bool)) *layer {
	flat := map[string]any{}
	names := map[string]string{}
	for _, f := range s.Fields {
		if f.Env == "" {
			continue
		}
		if v, ok := env(f.Env); ok && v != "" {
			flat[f.Key] = v
			names[f.Key] = f.Env
		}
	}
	return s.normalize(unflatten(flat), func(k string) string { return "env " + names[k] })
}

// flagLayer turns the flags given on the command line into a layer.
func (s *Schema) flagLayer(flags map[string]string) *layer {
	flat := map[string]any{}
	for k, v := range flags {
		flat[k] = v
	}
	return s.normalize(unflatten(flat), func(k string) string {
		if f := s.Field(k); f != nil {
			return "flag --" + f.Flag
		}
		return "flag"
	})
}

func unflatten(flat map[string]any) map[string]any {
	return maps.Unflatten(flat, ".")
}
