package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"
)

// groupTitles name the --usage groups as the Kotlin programs' CLI
// reference does.
var groupTitles = map[string]map[string]string{
	"proxy": {"": "Proxy options", "grpc": "Proxy gRPC options"},
	"agent": {"": "Agent options", "cache": "Agent HTTP client cache options", "grpc": "Agent gRPC options"},
}

// WriteUsage prints the options of the program, grouped, with their
// environment variables and defaults. defaults is DefaultProxy() or
// DefaultAgent().
func (s *Schema) WriteUsage(w io.Writer, defaults any) {
	fmt.Fprintf(w, "Usage: prometheus-%s [options] [-Dkey=value ...]\n", s.Program)
	fmt.Fprintf(w, "\nEvery option can also be set in the config file (YAML, TOML, JSON or HOCON) under its key, or with -D<key>=<value>.\n")
	fmt.Fprintf(w, "Precedence: flag > environment variable > -D > config file > default.\n")
	configHelp := "Config file path or http(s) URL"
	for _, g := range []string{"", "cache", "grpc"} {
		title, ok := groupTitles[s.Program][g]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  FLAG\tENV\tDEFAULT\tDESCRIPTION\n")
		if g == "" {
			fmt.Fprintf(tw, "  -c, --config PATH|URL\t%s_CONFIG\t\t%s\n", strings.ToUpper(s.Program), configHelp)
		}
		for i := range s.Fields {
			f := &s.Fields[i]
			if f.Flag == "" || f.Group != g {
				continue
			}
			help := f.Help
			if f.Compat != "" {
				help = "No effect (" + f.Compat + "). " + help
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", flagNames(f), f.Env, showDefault(f, defaults), help)
		}
		if g == "" {
			fmt.Fprintf(tw, "  -v, --version\t\t\tPrint version, commit and build date, and exit\n")
			fmt.Fprintf(tw, "  -u, --usage, -h\t\t\tPrint this message and exit\n")
			fmt.Fprintf(tw, "  -D<key>=<value>\t\t\tSet any config key, e.g. -D%s\n", s.example())
		}
		_ = tw.Flush()
	}
}

func (s *Schema) example() string {
	if s.Program == "proxy" {
		return "proxy.http.port=9090"
	}
	return "agent.http.maxConcurrentClients=5"
}

func flagNames(f *Field) string {
	var b strings.Builder
	if f.Short != "" {
		b.WriteString("-" + f.Short + ", ")
	}
	b.WriteString("--" + f.Flag)
	switch f.Type.Kind() {
	case reflect.Int:
		b.WriteString(" INT")
	case reflect.String:
		b.WriteString(" STRING")
	}
	return b.String()
}

// showDefault renders a field's default for --usage and the docs.
func showDefault(f *Field, defaults any) string {
	if f.Secret {
		return ""
	}
	v := f.Value(defaults)
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return ""
		}
		return v.String()
	case reflect.Slice, reflect.Map:
		return ""
	}
	return fmt.Sprint(v.Interface())
}
