package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/promproxy/promproxy/internal/config"
	"github.com/promproxy/promproxy/internal/procs"
	"github.com/promproxy/promproxy/internal/version"
)

// Env looks up an environment variable (os.LookupEnv in the binaries).
type Env func(string) (string, bool)

// hooks let in-process tests run the exact code of the binaries on
// loopback ephemeral ports, which the config itself rightly refuses
// (ports are 1..65535). Production passes the zero value.
type hooks struct {
	// listen rewrites the address a listener binds ("scrape", "agent",
	// "admin" or "metrics").
	listen func(name, addr string) string
	// ready receives the bound addresses once every listener is up.
	ready func(addrs map[string]net.Addr)
	// ownProcess is set by the commands, which may tune the runtime of
	// their process; in-process tests share theirs.
	ownProcess bool
}

// adaptProcs starts the GOMAXPROCS controller for the life of ctx, unless
// the process is not the command's own or the operator turned it off.
func (h hooks) adaptProcs(ctx context.Context, disabled bool, env Env, log *slog.Logger) {
	if !h.ownProcess || disabled {
		return
	}
	go procs.Adapt(ctx, env, log.With("component", "procs"))
}

func (h hooks) addr(name, host string, port int) string {
	a := net.JoinHostPort(host, strconv.Itoa(port))
	if h.listen != nil {
		return h.listen(name, a)
	}
	return a
}

func (h hooks) started(addrs map[string]net.Addr) {
	if h.ready != nil {
		h.ready(addrs)
	}
}

func printVersion(w io.Writer, program string) {
	v := version.Get()
	fmt.Fprintf(w, "%s %s (commit %s, built %s, %s)\n", program, v.Version, orUnknown(v.Commit), orUnknown(v.Date), runtime.Version())
}

// newRegistry returns the process's metrics registry; the Kotlin
// programs' "standard exports" become Go's runtime and process collectors.
func newRegistry(m config.Metrics) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	if m.StandardExportsEnabled {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if m.VersionInfoExportsEnabled {
		reg.MustRegister(collectors.NewBuildInfoCollector())
	}
	return reg
}

// warnInert logs every key that is set away from its default but has no
// effect here, so an operator migrating a Kotlin config learns what is
// ignored instead of guessing.
func warnInert(log *slog.Logger, s *config.Schema, section, defaults any, sources map[string]string) {
	for i := range s.Fields {
		f := &s.Fields[i]
		if f.Compat == "" {
			continue
		}
		if reflect.DeepEqual(f.Value(section).Interface(), f.Value(defaults).Interface()) {
			continue
		}
		log.Warn("config key has no effect in this implementation", "key", f.Key, "reason", f.Compat, "source", sources[f.Key])
	}
}

// warnUnavailable logs a feature that is configured but not part of this
// build yet.
func warnUnavailable(log *slog.Logger, key string) {
	log.Warn("config key is set but the feature is not available in this build yet; ignoring it", "key", key)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
