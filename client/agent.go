package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/internal/transport"
)

// Agent connects to a proxy and serves scrapes of its paths.
//
// Run it with Run (blocking, until its context ends) or with Start and
// Shutdown/Close (the embedding style). Either way every goroutine the
// agent starts has ended when Run returns, or when Shutdown or Close return.
type Agent struct {
	opts     Options
	log      *slog.Logger
	targets  map[string]*target
	bases    []string
	launchID string
	hostName string
	metrics  *metrics

	proxyClient  *http.Client // HTTP/2 only, for the proxy session
	proxyConns   *connSet     // every connection proxyClient dialled
	certAsked    atomic.Bool  // a proxy asked for a client certificate the agent lacks
	targetClient *http.Client // for fetching targets

	inFlight  atomic.Int64
	connected atomic.Bool
	regPaths  atomic.Int64 // paths accepted by the proxy on the live session

	draining  chan struct{} // closed by Shutdown
	drainOnce sync.Once

	runMu   sync.Mutex
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
	runErr  error
}

// New validates opts and returns an agent that is not yet connected.
func New(opts Options) (*Agent, error) {
	targets, err := opts.validate()
	if err != nil {
		return nil, err
	}
	bases := make([]string, len(opts.ProxyURLs))
	for i, u := range opts.ProxyURLs {
		bases[i], _ = proxyBaseURL(u, opts.proxyTLSEnabled())
	}
	host, _ := os.Hostname()
	var b [8]byte
	_, _ = rand.Read(b[:])
	a := &Agent{
		opts:     opts,
		targets:  targets,
		bases:    bases,
		launchID: hex.EncodeToString(b[:]),
		hostName: host,
		draining: make(chan struct{}),
	}
	a.log = opts.Logger.With("component", "agent", "agent_name", opts.AgentName)
	reg := opts.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a.metrics = newMetrics(reg, a.launchID, opts.AgentName)
	proxyRT, err := newProxyTransport(&opts, bases, a.log, &a.certAsked)
	if err != nil {
		return nil, err
	}
	targetTLS, err := targetTLSConfig(&opts, a.log)
	if err != nil {
		return nil, err
	}
	a.proxyConns = newConnSet()
	a.proxyConns.track(proxyRT)
	a.proxyClient = &http.Client{Transport: transport.WholeMessages(proxyRT)}
	a.targetClient = &http.Client{
		Timeout: opts.ClientTimeout,
		Transport: newH1Transport(&http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: targetTLS,
			// Several paths often point at one host (exporters behind one
			// address, or one exporter under several names); keeping fewer
			// idle connections than fetches in flight would open and close a
			// connection for most scrapes.
			MaxIdleConnsPerHost: min(max(opts.MaxConcurrentClients*len(targets), 2), opts.MaxInFlightScrapes),
			IdleConnTimeout:     90 * time.Second,
			// The agent asks for gzip itself and passes compressed bodies
			// through untouched; transparent decompression would undo that.
			DisableCompression:    true,
			ResponseHeaderTimeout: opts.ClientTimeout,
			ForceAttemptHTTP2:     true,
		}),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			return nil
		},
	}
	return a, nil
}

// LaunchID identifies this run of the agent on the proxy.
func (a *Agent) LaunchID() string { return a.launchID }

// Connected reports whether the agent has a registered session with a proxy.
func (a *Agent) Connected() bool { return a.connected.Load() }

// RegisteredPaths is the number of paths the proxy accepted on the current
// session.
func (a *Agent) RegisteredPaths() int { return int(a.regPaths.Load()) }

// Run connects and serves until ctx ends, reconnecting whenever the session
// drops. It returns nil when ctx ends or after Shutdown.
func (a *Agent) Run(ctx context.Context) error {
	defer a.proxyClient.CloseIdleConnections()
	defer a.proxyConns.closeAll()
	defer a.targetClient.CloseIdleConnections()
	idx, attempt := 0, 0
	for {
		if ctx.Err() != nil || a.isDraining() {
			return nil
		}
		base := a.bases[idx]
		log := a.log.With("proxy", base)
		a.certAsked.Store(false)
		established, err := a.runSession(ctx, base, log)
		a.connected.Store(false)
		a.regPaths.Store(0)
		if ctx.Err() != nil || a.isDraining() {
			return nil
		}
		var delay time.Duration
		switch {
		case errors.Is(err, errGoingAway):
			// The proxy is leaving: try the next one straight away.
			log.Info("proxy is going away; reconnecting")
			idx, attempt = (idx+1)%len(a.bases), 0
			delay = a.opts.Backoff.Delay(0) / 4
		case established:
			log.Warn("session with proxy ended; reconnecting", "err", describeConnectError(err, a.opts.proxyTLSEnabled(), a.certAsked.Load()))
			idx, attempt = 0, 0
			delay = a.opts.Backoff.Delay(0)
		default:
			a.metrics.connects.WithLabelValues("failure").Inc()
			log.Warn("cannot connect to proxy", "err", describeConnectError(err, a.opts.proxyTLSEnabled(), a.certAsked.Load()))
			idx = (idx + 1) % len(a.bases)
			if idx == 0 {
				delay = a.opts.Backoff.Delay(attempt)
				attempt++
			}
		}
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-a.draining:
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}

func (a *Agent) isDraining() bool {
	select {
	case <-a.draining:
		return true
	default:
		return false
	}
}

// Start runs the agent in the background. It returns an error if the agent
// is already running.
func (a *Agent) Start() error {
	a.runMu.Lock()
	defer a.runMu.Unlock()
	if a.running {
		return errors.New("client: agent already started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.running, a.cancel, a.done = true, cancel, make(chan struct{})
	go func() {
		defer close(a.done)
		a.runErr = a.Run(ctx)
	}()
	return nil
}

// Shutdown stops the agent gracefully: it stops taking scrapes, lets the
// ones in flight finish, unregisters its paths and closes the session. If
// ctx ends first, the remaining work is cancelled. Shutdown blocks until
// every goroutine of the agent has ended.
func (a *Agent) Shutdown(ctx context.Context) error {
	a.drainOnce.Do(func() { close(a.draining) })
	a.runMu.Lock()
	done, cancel := a.done, a.cancel
	a.runMu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return a.runErr
	case <-ctx.Done():
		cancel()
		<-done
		return fmt.Errorf("client: shutdown cut short: %w", ctx.Err())
	}
}

// Close stops the agent at once, cancelling scrapes in flight, and blocks
// until every goroutine of the agent has ended.
func (a *Agent) Close() error {
	a.drainOnce.Do(func() { close(a.draining) })
	a.runMu.Lock()
	done, cancel := a.done, a.cancel
	a.runMu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	<-done
	return nil
}
