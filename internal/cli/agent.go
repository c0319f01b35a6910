package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/client/agentconfig"
	"github.com/promproxy/promproxy/internal/adminhttp"
	"github.com/promproxy/promproxy/internal/config"
	"github.com/promproxy/promproxy/internal/version"
)

// RunAgent is the prometheus-agent command. It returns when ctx ends and
// the agent has finished its fetches in flight, unregistered and closed its
// session (nil: exit 0), or with the reason it could not start.
func RunAgent(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	return runAgent(ctx, args, stdout, stderr, env, hooks{ownProcess: true})
}

func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer, env Env, h hooks) error {
	loaded, action, err := config.LoadAgent(ctx, config.Input{Args: args, Env: env})
	if err != nil {
		return err
	}
	switch action {
	case config.ActionUsage:
		config.AgentSchema().WriteUsage(stdout, config.DefaultAgent())
		return nil
	case config.ActionVersion:
		printVersion(stdout, "prometheus-agent")
		return nil
	}
	cfg := &loaded.Config
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	warnInert(log, loaded.Schema, cfg, config.DefaultAgent(), loaded.Sources)
	// WIRING: metric filters (agent.filters) and dynamic target discovery
	// (agent.discovery.*) go into client.Options here once the client has
	// them.
	if len(cfg.Filters) > 0 {
		warnUnavailable(log, "agent.filters")
	}
	if cfg.Discovery.Enabled {
		warnUnavailable(log, "agent.discovery.enabled")
	}

	opts, err := agentconfig.Options(cfg, loaded.Sources)
	if err != nil {
		return err
	}
	reg := newRegistry(cfg.Metrics)
	opts.Registerer, opts.Logger = reg, log
	a, err := client.New(opts)
	if err != nil {
		return err
	}

	var servers []*adminhttp.Server
	defer func() {
		for _, s := range servers {
			_ = s.Shutdown(context.Background())
		}
	}()
	addrs := map[string]net.Addr{}
	if cfg.Admin.Enabled {
		s, err := adminhttp.Listen("admin", h.addr("admin", cfg.ListenHost, cfg.Admin.Port), adminhttp.AdminHandler(adminhttp.AdminOptions{
			Debug:  cfg.Admin.DebugEnabled,
			Health: func() adminhttp.Health { return agentHealth(a, len(opts.Paths)) },
		}))
		if err != nil {
			return err
		}
		servers = append(servers, s)
		addrs["admin"] = s.Addr()
		if err := useWebConfig(s, cfg.WebConfigFile, log); err != nil {
			return err
		}
	}
	if cfg.Metrics.Enabled {
		s, err := adminhttp.Listen("metrics", h.addr("metrics", cfg.ListenHost, cfg.Metrics.Port), adminhttp.MetricsHandler(reg, cfg.Metrics.Path))
		if err != nil {
			return err
		}
		servers = append(servers, s)
		addrs["metrics"] = s.Addr()
		if err := useWebConfig(s, cfg.WebConfigFile, log); err != nil {
			return err
		}
	}

	if cfg.WebConfigFile != "" && len(servers) == 0 {
		log.Warn("agent.webConfigFile has no effect: neither the admin nor the metrics listener is enabled", "web_config_file", cfg.WebConfigFile)
	}
	log.Info("prometheus-agent starting", "version", version.Get().Version, "config", loaded.File,
		"agent_name", opts.AgentName, "proxies", opts.ProxyURLs, "paths", len(opts.Paths))
	if err := a.Start(); err != nil {
		return err
	}
	h.started(addrs)
	h.adaptProcs(ctx, cfg.AdaptiveProcsDisabled, env, log)
	return serveAgent(ctx, a, servers, secs(cfg.Internal.ShutdownGracePeriodSecs), log)
}

// serveAgent runs the operational listeners next to the agent until ctx
// ends, then shuts the agent down gracefully first (its fetches in flight
// finish, its paths are unregistered) and the listeners last, so that
// /healthcheck reports the shutdown while it happens.
func serveAgent(ctx context.Context, a *client.Agent, servers []*adminhttp.Server, grace time.Duration, log *slog.Logger) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(s.Serve)
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down", "grace_period", grace)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		err := a.Shutdown(sctx)
		for _, s := range servers {
			lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err = errors.Join(err, s.Shutdown(lctx))
			lcancel()
		}
		log.Info("stopped")
		return err
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("agent stopped: %w", err)
	}
	return nil
}

// useWebConfig applies the web configuration file, if any, to one of the
// agent's operational listeners.
func useWebConfig(s *adminhttp.Server, file string, log *slog.Logger) error {
	if file == "" {
		return nil
	}
	return s.UseWebConfig(file, log)
}

// agentHealth is healthy while the agent has a session with a proxy on
// which at least one of its paths is registered (or it has none to
// register). A single refused path does not make it unhealthy: restarting
// the agent would not help, and its other paths are being served.
func agentHealth(a *client.Agent, configured int) adminhttp.Health {
	h := adminhttp.Health{Healthy: true, Checks: map[string]string{"proxy_connection": "ok", "paths": "ok"}}
	registered := a.RegisteredPaths()
	h.Details = map[string]any{"paths_configured": configured, "paths_registered": registered}
	if !a.Connected() {
		h.Healthy = false
		h.Checks["proxy_connection"] = "not connected to a proxy"
	}
	if configured > 0 && registered == 0 {
		h.Healthy = false
		h.Checks["paths"] = fmt.Sprintf("none of %d paths registered", configured)
	} else if registered < configured {
		h.Checks["paths"] = fmt.Sprintf("ok (%d of %d paths registered)", registered, configured)
	}
	return h
}
