package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

// levelDebug is slog's debug level, named for the per-scrape log check.
const levelDebug = slog.LevelDebug

// Proxy is a running proxy. It is created by New and served by Run.
type Proxy struct {
	opts     Options
	log      *slog.Logger
	reg      *registry
	metrics  *metrics
	sessions *sessionService

	servers   []*namedServer
	scrapeSrv *namedServer
	agentSrv  *namedServer

	stopping     atomic.Bool
	authWarnOnce sync.Once
	started      time.Time

	auth     *authenticator
	agentTLS bool // the agent listener serves TLS
}

// namedServer is one listener and the server on it.
type namedServer struct {
	name string
	ln   net.Listener
	srv  *http.Server
}

// New validates opts and binds every enabled listener, so that the ports are
// known (Addr) before Run and a port conflict fails here rather than later.
func New(opts Options) (*Proxy, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry() // private and unserved: metrics off
	}
	p := &Proxy{
		opts:    opts,
		log:     opts.Logger.With("component", "proxy"),
		reg:     newRegistry(),
		started: time.Now(),
	}
	p.metrics = newMetrics(reg, p.reg)
	p.sessions = &sessionService{p: p}
	p.auth = newAuthenticator(&opts, reg, opts.Logger, p.reg.hasAgent)
	agentTLS, err := agentTLSConfig(&opts, opts.Logger)
	if err != nil {
		return nil, err
	}
	p.agentTLS = agentTLS != nil

	agentMux := http.NewServeMux()
	agentMux.Handle(promproxyv1connect.NewProxyServiceHandler(p.sessions,
		connect.WithReadMaxBytes(opts.MaxMessageSize),
		connect.WithSendMaxBytes(opts.MaxMessageSize),
		// Scrape bodies arrive already gzipped where it pays; compressing
		// the protocol messages again only burns CPU on both ends. Peers
		// that send gzip are still understood.
		connect.WithCompressMinBytes(math.MaxInt32),
	))

	bind := func(name, addr string, srv *http.Server) *namedServer {
		if err != nil {
			return nil
		}
		ln, lerr := net.Listen("tcp", addr)
		if lerr != nil {
			err = fmt.Errorf("listen on %s address %s: %w", name, addr, lerr)
			return nil
		}
		ns := &namedServer{name: name, ln: ln, srv: srv}
		p.servers = append(p.servers, ns)
		return ns
	}
	p.scrapeSrv = bind("scrape", opts.ListenAddr, newHTTPServer(p.scrapeHandler()))
	p.agentSrv = bind("agent", opts.AgentListenAddr, transport.NewServer(p.answerHead(p.auth.middleware(withFlushGate(transport.ReadAheadBody(agentMux)))), agentTLS, opts.Keepalive))
	if p.agentSrv != nil && agentTLS == nil {
		// TLS reads whole records already; cleartext HTTP/2 needs help.
		p.agentSrv.ln = transport.ReadAhead(p.agentSrv.ln)
	}
	if opts.AdminEnabled {
		bind("admin", opts.AdminListenAddr, newHTTPServer(p.adminHandler()))
	}
	if opts.MetricsEnabled {
		g := opts.Gatherer
		if g == nil {
			g, _ = opts.Registerer.(prometheus.Gatherer)
		}
		if g == nil {
			err = errors.Join(err, errors.New("server: option Gatherer is required when metrics are enabled and Registerer is not a Gatherer"))
		} else {
			bind("metrics", opts.MetricsListenAddr, newHTTPServer(metricsHandler(g, opts.MetricsPath)))
		}
	}
	if err == nil {
		err = p.setupSecurity()
	}
	if err != nil {
		p.closeListeners()
		return nil, err
	}
	return p, nil
}

// newHTTPServer returns a server for the plain HTTP listeners. There is no
// WriteTimeout: a large scrape legitimately streams for as long as
// Prometheus' scrape timeout allows, which the scrape's own deadline
// enforces. Slow or idle clients are cut by the header, read and idle
// timeouts.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func (p *Proxy) closeListeners() {
	for _, s := range p.servers {
		_ = s.ln.Close()
	}
}

func (p *Proxy) addr(name string) net.Addr {
	for _, s := range p.servers {
		if s.name == name {
			return s.ln.Addr()
		}
	}
	return nil
}

// Addr returns the scrape listener's address.
func (p *Proxy) Addr() net.Addr { return p.addr("scrape") }

// AgentAddr returns the agent listener's address.
func (p *Proxy) AgentAddr() net.Addr { return p.addr("agent") }

// AdminAddr returns the admin listener's address, or nil when it is off.
func (p *Proxy) AdminAddr() net.Addr { return p.addr("admin") }

// MetricsAddr returns the metrics listener's address, or nil when it is off.
func (p *Proxy) MetricsAddr() net.Addr { return p.addr("metrics") }

// Run serves until ctx is done, then shuts down: new scrapes are refused,
// scrapes in flight get ShutdownGracePeriod to finish, agents are told the
// proxy is going away and their sessions are closed. Run returns nil after a
// clean shutdown.
func (p *Proxy) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range p.servers {
		g.Go(func() error {
			p.log.Info("listening", "listener", s.name, "addr", s.ln.Addr().String())
			if err := p.serve(s); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s listener: %w", s.name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		p.evictLoop(gctx)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		return p.shutdown(context.WithoutCancel(ctx))
	})
	err := g.Wait()
	p.sessions.handlers.Wait()
	p.sessions.receivers.Wait()
	return err
}

func (p *Proxy) shutdown(ctx context.Context) error {
	p.stopping.Store(true)
	p.log.Info("shutting down", "grace_period", p.opts.ShutdownGracePeriod)
	var errs []error
	drainCtx, cancel := context.WithTimeout(ctx, p.opts.ShutdownGracePeriod)
	defer cancel()
	// Scrapes first: their answers still need the agents' sessions.
	if err := p.scrapeSrv.srv.Shutdown(drainCtx); err != nil {
		errs = append(errs, p.scrapeSrv.srv.Close())
	}
	// The sender ends each session right after GoingAway is on the wire, so
	// agents reconnect at once instead of waiting for the stream to break.
	for _, c := range p.reg.allAgents() {
		if !c.trySend(goingAway("proxy is shutting down")) {
			c.close(errProxyStopping)
		}
	}
	for _, s := range p.servers {
		if s == p.scrapeSrv {
			continue
		}
		sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.srv.Shutdown(sctx); err != nil {
			for _, c := range p.reg.allAgents() {
				c.close(errProxyStopping)
			}
			if cerr := s.srv.Close(); cerr != nil {
				errs = append(errs, fmt.Errorf("close %s listener: %w", s.name, cerr))
			}
		}
		scancel()
	}
	p.log.Info("stopped")
	return errors.Join(errs...)
}

func (p *Proxy) evictLoop(ctx context.Context) {
	t := time.NewTicker(p.opts.StaleAgentCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range p.reg.staleAgents(time.Now().Add(-p.opts.MaxAgentInactivity)) {
				p.metrics.evictions.Inc()
				c.close(errEvicted)
			}
		}
	}
}

// addAgent registers a new session unless the proxy is shutting down.
func (p *Proxy) addAgent(c *agentConn) error {
	if p.stopping.Load() {
		return errProxyStopping
	}
	p.reg.addAgent(c)
	return nil
}

// removeAgent forgets a finished session and its paths. Scrapes waiting on
// it were already woken by the session's done channel.
func (p *Proxy) removeAgent(c *agentConn) {
	for _, path := range p.reg.removeAgent(c) {
		p.metrics.forgetPath(path)
	}
}

func (p *Proxy) warnAuthorizationOnce() {
	if p.agentTLS {
		return
	}
	p.authWarnOnce.Do(func() {
		p.log.Warn("forwarding Authorization headers to agents over a channel without TLS; anyone on the path between proxy and agent can read them")
	})
}

// answerHead answers HEAD on the agent port before authentication: 200
// while the proxy runs, 503 once it is stopping. Agents send one before
// opening a session, only so that the session starts on a connection that
// has seen the proxy's HTTP/2 SETTINGS (see transport.AwaitSettings), and
// load balancers may use it as a health check. Answered here, it never
// counts or logs as a refused agent, and it reveals nothing a TCP connect
// does not.
func (p *Proxy) answerHead(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		if p.stopping.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}
