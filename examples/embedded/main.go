// Command embedded shows an agent running inside another Go program: the
// program serves its own metrics on a loopback listener and embeds an
// agent that makes them scrapeable through a proxy, with no inbound port.
//
//	go run ./examples/embedded --proxy localhost:50051
//
// then scrape http://<proxy>:8080/embedded_metrics. Ctrl-C stops the agent
// gracefully; a second Ctrl-C stops it at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/promproxy/promproxy/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("embedded", flag.ContinueOnError)
	proxy := fs.String("proxy", "localhost:50051", "proxy agent address (host:port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := startApp(*proxy, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	restoreDefaultSignals() // a second signal now ends the process at once
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Shutdown(sctx)
}

// restoreDefaultSignals undoes main's NotifyContext, so that a second
// signal during the graceful shutdown ends the process at once.
func restoreDefaultSignals() { signal.Reset(os.Interrupt, syscall.SIGTERM) }

// app is a program with its own metrics and an embedded agent.
type app struct {
	agent   *client.Agent
	metrics *http.Server
	ln      net.Listener
}

// startApp serves the program's metrics on a loopback port and starts an
// agent that registers them with the proxy as path "embedded_metrics".
func startApp(proxy string, log *slog.Logger) (*app, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	// Options can also come from a prometheus-agent configuration file,
	// with agentconfig.Load(ctx, "agent.yaml"), to share one file with the
	// binary; here they are built in code.
	opts := client.DefaultOptions()
	opts.ProxyURLs = []string{proxy}
	opts.AgentName = "embedded-example"
	opts.Paths = []client.PathConfig{{
		Name: "embedded", Path: "embedded_metrics",
		URL: "http://" + ln.Addr().String() + "/metrics",
	}}
	opts.Logger = log
	// The agent's own metrics go into the program's registry, next to the
	// program's metrics.
	opts.Registerer = reg
	agent, err := client.New(opts)
	if err == nil {
		err = agent.Start()
	}
	if err != nil {
		_ = srv.Close()
		return nil, err
	}
	return &app{agent: agent, metrics: srv, ln: ln}, nil
}

// Shutdown stops the agent gracefully (scrapes in flight finish, paths are
// unregistered) and then the metrics server. When it returns, every
// goroutine either started has ended.
func (a *app) Shutdown(ctx context.Context) error {
	err := a.agent.Shutdown(ctx)
	return errors.Join(err, a.metrics.Shutdown(ctx))
}

// Close stops both at once.
func (a *app) Close() error {
	return errors.Join(a.agent.Close(), a.metrics.Close())
}
