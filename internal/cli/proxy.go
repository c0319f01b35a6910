package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/promproxy/promproxy/internal/config"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/internal/version"
	"github.com/promproxy/promproxy/server"
)

// RunProxy is the prometheus-proxy command. It returns when ctx ends and
// the proxy has drained (nil: exit 0), or with the reason it could not
// start or keep running.
func RunProxy(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	return runProxy(ctx, args, stdout, stderr, env, hooks{ownProcess: true})
}

func runProxy(ctx context.Context, args []string, stdout, stderr io.Writer, env Env, h hooks) error {
	loaded, action, err := config.LoadProxy(ctx, config.Input{Args: args, Env: env})
	if err != nil {
		return err
	}
	switch action {
	case config.ActionUsage:
		config.ProxySchema().WriteUsage(stdout, config.DefaultProxy())
		return nil
	case config.ActionVersion:
		printVersion(stdout, "prometheus-proxy")
		return nil
	}
	cfg := &loaded.Config
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	warnInert(log, loaded.Schema, cfg, config.DefaultProxy(), loaded.Sources)
	// WIRING: service discovery (proxy.service.discovery.*) and the web
	// dashboard (proxy.ui.*) go into server.Options here once the server
	// has them.
	if cfg.Service.Discovery.Enabled {
		warnUnavailable(log, "proxy.service.discovery.enabled")
	}
	if cfg.UI.Enabled {
		warnUnavailable(log, "proxy.ui.enabled")
	}

	opts := proxyOptions(cfg, h)
	reg := newRegistry(cfg.Metrics)
	opts.Registerer, opts.Gatherer, opts.Logger = reg, reg, log
	p, err := server.New(opts)
	if err != nil {
		return err
	}
	addrs := map[string]net.Addr{"scrape": p.Addr(), "agent": p.AgentAddr()}
	if a := p.AdminAddr(); a != nil {
		addrs["admin"] = a
	}
	if a := p.MetricsAddr(); a != nil {
		addrs["metrics"] = a
	}
	log.Info("prometheus-proxy starting", "version", version.Get().Version, "config", loaded.File,
		"scrape_addr", p.Addr().String(), "agent_addr", p.AgentAddr().String())
	h.started(addrs)
	h.adaptProcs(ctx, cfg.AdaptiveProcsDisabled, env, log)
	// One machine-readable line on stdout: with port 0 it is how scripts
	// and tests learn the ports that were picked.
	fmt.Fprintf(stdout, "prometheus-proxy listening: scrape %s, agents %s\n", p.Addr(), p.AgentAddr())
	// Run drains on ctx's end: new scrapes are refused, those in flight get
	// the grace period, agents are told the proxy is going away.
	if err := p.Run(ctx); err != nil {
		return fmt.Errorf("proxy stopped: %w", err)
	}
	return nil
}

// proxyOptions maps the configuration onto the server library's options.
func proxyOptions(cfg *config.Proxy, h hooks) server.Options {
	o := server.DefaultOptions()
	o.ListenAddr = h.addr("scrape", cfg.ListenHost, cfg.HTTP.Port)
	o.AgentListenAddr = h.addr("agent", cfg.ListenHost, cfg.Agent.Port)
	o.AdminEnabled = cfg.Admin.Enabled
	o.AdminListenAddr = h.addr("admin", cfg.ListenHost, cfg.Admin.Port)
	o.Debug = cfg.Admin.DebugEnabled
	o.MetricsEnabled = cfg.Metrics.Enabled
	o.MetricsListenAddr = h.addr("metrics", cfg.ListenHost, cfg.Metrics.Port)
	o.MetricsPath = cfg.Metrics.Path
	o.ScrapeRequestTimeout = secs(cfg.Internal.ScrapeRequestTimeoutSecs)
	o.MaxAgentInactivity = secs(cfg.Internal.MaxAgentInactivitySecs)
	if !cfg.Internal.StaleAgentCheckEnabled {
		// The server always checks; an inactivity limit no agent can reach
		// is the same as not checking.
		o.MaxAgentInactivity = 100 * 365 * 24 * time.Hour
	}
	o.StaleAgentCheckInterval = secs(cfg.Internal.StaleAgentCheckPauseSecs)
	o.MaxUnzippedContentSize = int64(cfg.Internal.MaxUnzippedContentSizeMBytes) << 20
	o.UnhealthyInFlightScrapes = cfg.Internal.ScrapeRequestMapUnhealthySize
	o.ConsolidatedMode = server.ConsolidatedMode(cfg.ConsolidatedMode)
	o.ShutdownGracePeriod = secs(cfg.Internal.ShutdownGracePeriodSecs)
	o.Keepalive = keepalive(cfg.GRPC.KeepAliveTimeSecs, cfg.GRPC.KeepAliveTimeoutSecs)
	o.Version = version.Get().Version
	proxySecurity(cfg, &o)
	return o
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// keepalive maps the gRPC keepalive keys; -1 keeps the transport default.
func keepalive(timeSecs, timeoutSecs int) transport.Keepalive {
	k := transport.DefaultKeepalive
	if timeSecs > 0 {
		k.Interval = secs(timeSecs)
	}
	if timeoutSecs > 0 {
		k.Timeout = secs(timeoutSecs)
	}
	return k
}
