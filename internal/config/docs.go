package config

import (
	"fmt"
	"strings"
)

// Markdown renders the reference tables of docs/configuration.md from the
// schema, so that the documentation cannot drift from the code: a test
// fails when the committed file differs from this output.
func (s *Schema) Markdown(defaults any) string {
	var b strings.Builder
	section := ""
	for i := range s.Fields {
		f := &s.Fields[i]
		parent := f.Key[:strings.LastIndex(f.Key, ".")]
		if parent != section {
			if section != "" {
				b.WriteString("\n")
			}
			section = parent
			fmt.Fprintf(&b, "#### `%s`\n\n", parent)
			b.WriteString("| Key | Flag | Environment | Default | Meaning |\n")
			b.WriteString("|:----|:-----|:------------|:--------|:--------|\n")
		}
		flags := ""
		if f.Flag != "" {
			flags = "`--" + f.Flag + "`"
			if f.Short != "" {
				flags += ", `-" + f.Short + "`"
			}
		}
		env := ""
		if f.Env != "" {
			env = "`" + f.Env + "`"
		}
		def := showDefault(f, defaults)
		if def != "" {
			def = "`" + def + "`"
		}
		help := f.Help
		if allowed := allowedText(f.Check); allowed != "" {
			help += " " + allowed
		}
		if f.New {
			help += " *New: not in the Kotlin version.*"
		}
		if f.Compat != "" {
			help = "**Accepted, no effect:** " + f.Compat + ". " + help
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Key[len(parent)+1:], flags, env, def, mdEscape(help))
	}
	return b.String()
}

// allowedText says in words what a check accepts.
func allowedText(check string) string {
	name, arg, _ := strings.Cut(check, "=")
	switch name {
	case "port":
		return "Allowed: 1 to 65535."
	case "positive":
		return "Allowed: greater than 0."
	case "nonneg":
		return "Allowed: 0 or more."
	case "positive_or_unset":
		return "Allowed: greater than 0, or -1."
	case "range":
		lo, hi, _ := strings.Cut(arg, "..")
		return fmt.Sprintf("Allowed: %s to %s.", lo, hi)
	case "oneof":
		return "Allowed: " + strings.ReplaceAll(arg, "|", ", ") + "."
	case "loglevel":
		return "Allowed: " + strings.Join(LogLevels, ", ") + "."
	case "segment":
		return "Allowed: one URL path segment."
	case "token":
		return "Allowed: printable ASCII without leading or trailing white space."
	}
	return ""
}

// mdEscape keeps help text from being read as table syntax or HTML.
func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;").Replace(s)
}
