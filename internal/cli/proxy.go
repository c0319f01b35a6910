package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/promproxy/promproxy/server"
)

// RunProxy is the prometheus-proxy command.
func RunProxy(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	opts := server.DefaultOptions()
	fs := flag.NewFlagSet("prometheus-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 8080, "scrape listen port (Prometheus scrapes http://proxy:port/<path>)")
	agentPort := fs.Int("agent_port", 50051, "listen port for agent connections")
	fs.BoolVar(&opts.AdminEnabled, "admin", false, "enable the admin listener")
	adminPort := fs.Int("admin_port", 8092, "admin listen port")
	fs.BoolVar(&opts.MetricsEnabled, "metrics", false, "enable the metrics listener")
	metricsPort := fs.Int("metrics_port", 8082, "metrics listen port")
	fs.BoolVar(&opts.Debug, "debug", false, "expose pprof and /threaddump on the admin listener")
	host := fs.String("listen_host", "", "address to bind every listener to (empty: all interfaces)")
	logLevel := fs.String("log_level", "info", "log level: trace, debug, info, warn, error, off")
	consolidated := fs.String("consolidated_mode", string(opts.ConsolidatedMode), "how a path with several consolidated agents is scraped: merge or failover")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	opts.ConsolidatedMode = server.ConsolidatedMode(*consolidated)
	addr := func(p int) string { return net.JoinHostPort(*host, strconv.Itoa(p)) }
	opts.ListenAddr, opts.AgentListenAddr = addr(*port), addr(*agentPort)
	opts.AdminListenAddr, opts.MetricsListenAddr = addr(*adminPort), addr(*metricsPort)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Registerer, opts.Logger = reg, log
	p, err := server.New(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "prometheus-proxy listening: scrape %s, agents %s\n", p.Addr(), p.AgentAddr())
	return p.Run(ctx)
}
