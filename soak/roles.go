package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/server"
)

// The environment of a child process: its role and its arguments as JSON.
const (
	roleEnv     = "SOAK_ROLE"
	roleArgsEnv = "SOAK_ROLE_ARGS"
)

// roleArgs configures a child process.
type roleArgs struct {
	Proxy string              `json:"proxy,omitempty"` // agent: the proxy's agent address
	Name  string              `json:"name,omitempty"`  // agent: its name
	Paths []client.PathConfig `json:"paths,omitempty"` // agent: the paths it serves
}

// ready is the line a child prints on stdout once it is serving.
type ready struct {
	Scrape string `json:"scrape,omitempty"`
	Agent  string `json:"agent,omitempty"`
	Stats  string `json:"stats"` // address of the child's /metrics and /stats
}

// stats is what /stats reports: the process's live heap right after a
// collection, and its goroutines. Unlike RSS, the live heap falls when
// memory is freed, so a trend in it is a trend in retained data.
type stats struct {
	HeapAlloc  uint64 `json:"heap_alloc"`
	Goroutines int    `json:"goroutines"`
}

// runRole runs one child process until ctx ends.
func runRole(ctx context.Context, role, rawArgs string, stdout io.Writer) error {
	var args roleArgs
	if rawArgs != "" {
		if err := json.Unmarshal([]byte(rawArgs), &args); err != nil {
			return fmt.Errorf("%s: %s: %w", role, roleArgsEnv, err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	statsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		_ = json.NewEncoder(w).Encode(stats{HeapAlloc: m.HeapAlloc, Goroutines: runtime.NumGoroutine()})
	})
	statsSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = statsSrv.Serve(statsLn) }()
	defer statsSrv.Close()
	r := ready{Stats: statsLn.Addr().String()}

	switch role {
	case "proxy":
		opts := server.DefaultOptions()
		opts.ListenAddr, opts.AgentListenAddr = "127.0.0.1:0", "127.0.0.1:0"
		opts.Logger, opts.Registerer = log, reg
		p, err := server.New(opts)
		if err != nil {
			return err
		}
		r.Scrape, r.Agent = p.Addr().String(), p.AgentAddr().String()
		if err := json.NewEncoder(stdout).Encode(r); err != nil {
			return err
		}
		return p.Run(ctx)
	case "agent":
		opts := client.DefaultOptions()
		opts.ProxyURLs, opts.AgentName, opts.Paths = []string{args.Proxy}, args.Name, args.Paths
		opts.Logger, opts.Registerer = log, reg
		// Recovery after a kill is part of what is measured: start retrying
		// quickly, as after any restart.
		opts.Backoff.Initial, opts.Backoff.Max = 200*time.Millisecond, 5*time.Second
		a, err := client.New(opts)
		if err != nil {
			return err
		}
		if err := a.Start(); err != nil {
			return err
		}
		if err := json.NewEncoder(stdout).Encode(r); err != nil {
			return errors.Join(err, a.Close())
		}
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.Shutdown(sctx)
	}
	return fmt.Errorf("unknown role %q", role)
}
