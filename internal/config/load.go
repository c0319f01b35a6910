package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
)

// Input is what a load reads besides the config file it names.
type Input struct {
	// Args are the command-line arguments, without the program name.
	Args []string
	// Env looks up environment variables (os.LookupEnv in the binaries).
	Env func(string) (string, bool)
	// HTTPClient fetches --config URLs; nil uses a client with a 30s
	// timeout.
	HTTPClient *http.Client
}

// Action is what the command line asked the program to do.
type Action int

const (
	// ActionRun runs the program.
	ActionRun Action = iota
	// ActionUsage prints the usage and exits (--usage, -u, -h, --help).
	ActionUsage
	// ActionVersion prints the version and exits (--version, -v).
	ActionVersion
)

// Loaded is a loaded, validated configuration.
type Loaded[T any] struct {
	// Config is the program's section, defaults filled in.
	Config T
	// Schema describes its keys.
	Schema *Schema
	// Sources says where each key that is not at its default came from:
	// "file x.yaml", "env PROXY_PORT", "flag --port" or "-Dproxy.http.port".
	Sources map[string]string
	// File is the --config file or URL, if any.
	File string
}

// Error is an invalid configuration: every problem found, so that an
// operator fixes them all in one go rather than one per restart.
type Error struct {
	Problems []string
}

// Error returns all problems on one line.
func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid configuration (%d problems): %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// LoadProxy loads prometheus-proxy's configuration.
func LoadProxy(ctx context.Context, in Input) (*Loaded[Proxy], Action, error) {
	return load(ctx, ProxySchema(), DefaultProxy(), "PROXY_CONFIG", in, validateProxy)
}

// LoadAgent loads prometheus-agent's configuration.
func LoadAgent(ctx context.Context, in Input) (*Loaded[Agent], Action, error) {
	return load(ctx, AgentSchema(), DefaultAgent(), "AGENT_CONFIG", in, validateAgent)
}

func load[T any](ctx context.Context, s *Schema, def T, configEnv string, in Input,
	validate func(*T, *checker)) (*Loaded[T], Action, error) {
	env := in.Env
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	cl, err := s.parseArgs(in.Args)
	if err != nil {
		return nil, ActionRun, err
	}
	if cl.action != ActionRun {
		return nil, cl.action, nil
	}
	out := &Loaded[T]{Config: def, Schema: s, Sources: map[string]string{}}
	var layers []*layer

	out.File = cl.config
	if out.File == "" {
		out.File, _ = env(configEnv)
	}
	var dir string
	if out.File != "" {
		src, err := readSource(ctx, out.File, in.HTTPClient)
		if err != nil {
			return nil, ActionRun, err
		}
		raw, err := src.parse(env)
		if err != nil {
			return nil, ActionRun, err
		}
		dir = src.dir
		layers = append(layers, s.normalize(raw, func(string) string { return src.name }))
	}
	layers = append(layers, s.defineLayer(cl.defines))
	layers = append(layers, s.envLayer(env))
	layers = append(layers, s.flagLayer(cl.flags))

	var problems []string
	k := koanf.New(".")
	for _, l := range layers {
		problems = append(problems, l.errs...)
		if err := k.Load(confmap.Provider(map[string]any{s.Program: l.values}, ""), nil); err != nil {
			return nil, ActionRun, fmt.Errorf("config: merge: %w", err)
		}
		for key, src := range l.sources {
			out.Sources[key] = src
		}
	}
	err = k.UnmarshalWithConf(s.Program, &out.Config, koanf.UnmarshalConf{
		Tag:           "koanf",
		DecoderConfig: &mapstructure.DecoderConfig{ErrorUnused: true, Squash: true},
	})
	if err != nil {
		// Normalisation checked every key and type, so this is a bug.
		problems = append(problems, "cannot decode: "+err.Error())
	}
	resolvePaths(s, &out.Config, out.Sources, dir)
	c := &checker{s: s, sources: out.Sources, section: &out.Config}
	c.tags()
	validate(&out.Config, c)
	problems = append(problems, c.problems...)
	if len(problems) > 0 {
		return nil, ActionRun, &Error{Problems: problems}
	}
	return out, ActionRun, nil
}

// commandLine is the parsed command line.
type commandLine struct {
	action  Action
	config  string
	flags   map[string]string // key -> raw value, for the flags given
	defines [][2]string       // -Dkey=value, in order
}

// rawFlag records a flag's text; conversion happens with the other
// sources so that errors read the same whichever source a value came from.
type rawFlag struct {
	isBool bool
	set    func(string)
}

func (f *rawFlag) String() string     { return "" }
func (f *rawFlag) Set(v string) error { f.set(v); return nil }
func (f *rawFlag) IsBoolFlag() bool   { return f.isBool }

func (s *Schema) parseArgs(args []string) (*commandLine, error) {
	cl := &commandLine{flags: map[string]string{}}
	rest, err := extractDefines(args, cl)
	if err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet(s.Program, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for i := range s.Fields {
		f := &s.Fields[i]
		if f.Flag == "" {
			continue
		}
		v := &rawFlag{isBool: f.Type.Kind() == reflect.Bool, set: func(x string) { cl.flags[f.Key] = x }}
		fs.Var(v, f.Flag, f.Help)
		if f.Short != "" {
			fs.Var(v, f.Short, f.Help)
		}
	}
	fs.StringVar(&cl.config, "config", "", "")
	fs.StringVar(&cl.config, "c", "", "")
	var usage, version bool
	for _, n := range []string{"usage", "u", "help", "h"} {
		fs.BoolVar(&usage, n, false, "")
	}
	for _, n := range []string{"version", "v"} {
		fs.BoolVar(&version, n, false, "")
	}
	if err := fs.Parse(rest); err != nil {
		return nil, s.flagError(err)
	}
	switch {
	case usage:
		cl.action = ActionUsage
	case version:
		cl.action = ActionVersion
	case fs.NArg() > 0:
		hint := ""
		if a := fs.Arg(0); a == "true" || a == "false" {
			hint = " (a boolean flag takes its value as --flag=false)"
		}
		return nil, fmt.Errorf("unexpected argument %q%s; see --usage", fs.Arg(0), hint)
	}
	return cl, nil
}

// extractDefines takes -Dkey=value (or -D key=value) out of args, as the
// flag package would read -Dkey as a flag named "Dkey".
func extractDefines(args []string, cl *commandLine) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-D") {
			rest = append(rest, a)
			continue
		}
		def := a[2:]
		if def == "" && i+1 < len(args) {
			i++
			def = args[i]
		}
		k, v, ok := strings.Cut(def, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-D%s: expected -Dkey=value", def)
		}
		cl.defines = append(cl.defines, [2]string{strings.TrimSpace(k), v})
	}
	return rest, nil
}

func (s *Schema) flagError(err error) error {
	msg := err.Error()
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		best, bestD := "", 2+len(name)/5
		for _, f := range s.Fields {
			if f.Flag != "" {
				if d := distance(name, f.Flag); d < bestD {
					best, bestD = f.Flag, d
				}
			}
		}
		msg = "unknown flag --" + name
		if best != "" {
			msg += fmt.Sprintf("; did you mean --%s?", best)
		}
	}
	return errors.New(msg + " (see --usage)")
}

func resolvePaths(s *Schema, section any, sources map[string]string, dir string) {
	if dir == "" {
		return
	}
	for i := range s.Fields {
		f := &s.Fields[i]
		if !f.Path || !strings.HasPrefix(sources[f.Key], "file ") {
			continue
		}
		v := f.Value(section)
		p := v.String()
		if p == "" || filepath.IsAbs(p) {
			continue
		}
		// Relative to the config file, unless only the working directory
		// has it: the Kotlin programs resolved against the working
		// directory, and their users' files must keep working.
		cand := filepath.Join(dir, p)
		if exists(cand) || !exists(p) {
			v.SetString(cand)
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
