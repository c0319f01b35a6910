// Package adminhttp serves the agent's operational listeners: the admin
// routes (/ping, /healthcheck, /version and, in debug mode, /threaddump and
// pprof) and the metrics endpoint. Each runs on its own listener, so none
// of these routes is ever reachable anywhere else.
package adminhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/promproxy/promproxy/internal/version"
	"github.com/promproxy/promproxy/internal/webconfig"
)

// Server is one bound listener and the HTTP server on it.
type Server struct {
	name string
	ln   net.Listener
	srv  *http.Server
	// webConfig is the Prometheus web configuration file applied by Serve,
	// or "" for plain HTTP.
	webConfig string
	log       *slog.Logger
}

// Listen binds addr now, so that a port conflict fails at startup and
// Addr can report an ephemeral port.
func Listen(name, addr string, h http.Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s address %s: %w", name, addr, err)
	}
	return &Server{name: name, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// pprof's CPU profile and trace stream for as long as asked, so only
		// the request, not the response, is bounded.
		ReadTimeout:    30 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}}, nil
}

// UseWebConfig makes Serve apply a Prometheus web configuration file (TLS,
// client certificates, basic auth), as the proxy does on its listeners.
// The file is checked now, so that a broken one fails at startup; while
// serving, changes to it and to its certificates are picked up. Call it
// before Serve.
func (s *Server) UseWebConfig(file string, log *slog.Logger) error {
	if err := webconfig.Validate(file); err != nil {
		return fmt.Errorf("%s listener: web config file %q: %w", s.name, file, err)
	}
	s.webConfig = file
	s.log = log.With("listener", s.name)
	// Refused handshakes and malformed requests are reported here, naming
	// the peer, instead of on the process's raw stderr.
	s.srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelInfo)
	return nil
}

// Name is the listener's name ("admin" or "metrics").
func (s *Server) Name() string { return s.name }

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown; it returns nil after a shutdown.
func (s *Server) Serve() error {
	var err error
	if s.webConfig != "" {
		err = webconfig.Serve(s.ln, s.srv, s.webConfig, s.log)
	} else {
		err = s.srv.Serve(s.ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s listener: %w", s.name, err)
	}
	return nil
}

// Shutdown stops the server, waiting for requests in flight until ctx
// ends, then closing what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	// The listener is closed here too: Shutdown only closes listeners that
	// Serve has started on, and this one may never have been served.
	defer s.ln.Close()
	if err := s.srv.Shutdown(ctx); err != nil {
		return errors.Join(err, s.srv.Close())
	}
	return nil
}

// Health is the /healthcheck document.
type Health struct {
	// Healthy is false when any check failed; the status is then 503.
	Healthy bool `json:"healthy"`
	// Checks maps each check to "ok" or what is wrong.
	Checks map[string]string `json:"checks"`
	// Details carries informational values that do not affect health.
	Details map[string]any `json:"details,omitempty"`
}

// AdminOptions configures the admin routes.
type AdminOptions struct {
	// Debug adds /threaddump and /debug/pprof/.
	Debug bool
	// Health runs the health checks for /healthcheck.
	Health func() Health
}

// AdminHandler returns the admin routes.
func AdminHandler(o AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("pong"))
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		v := version.Get()
		writeJSON(w, http.StatusOK, map[string]string{
			"version": v.Version, "commit": v.Commit, "date": v.Date, "go_version": runtime.Version(),
		})
	})
	mux.HandleFunc("GET /healthcheck", func(w http.ResponseWriter, _ *http.Request) {
		h := o.Health()
		status := http.StatusOK
		if !h.Healthy {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, h)
	})
	if o.Debug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /threaddump", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_ = rpprof.Lookup("goroutine").WriteTo(w, 2)
		})
	}
	return mux
}

// MetricsHandler serves g at /path.
func MetricsHandler(g prometheus.Gatherer, path string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /"+strings.TrimPrefix(path, "/"), promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
