package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/server"
)

// restartableProxy is an in-process proxy that can be stopped and started
// again on the same ports.
type restartableProxy struct {
	t      testing.TB
	scrape string
	agent  string
	cancel context.CancelFunc
	done   chan error
}

func newRestartableProxy(t testing.TB) *restartableProxy {
	rp := &restartableProxy{t: t,
		scrape: "127.0.0.1:" + strconv.Itoa(freePort(t)),
		agent:  "127.0.0.1:" + strconv.Itoa(freePort(t)),
	}
	rp.start()
	t.Cleanup(rp.stop)
	return rp
}

func (rp *restartableProxy) start() {
	rp.t.Helper()
	opts := server.DefaultOptions()
	opts.ListenAddr, opts.AgentListenAddr = rp.scrape, rp.agent
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Registerer = prometheus.NewRegistry()
	opts.ShutdownGracePeriod = 2 * time.Second
	p, err := server.New(opts)
	if err != nil {
		rp.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rp.cancel, rp.done = cancel, make(chan error, 1)
	go func() { rp.done <- p.Run(ctx) }()
}

// stop shuts the proxy down and waits for it; a second call does nothing.
func (rp *restartableProxy) stop() {
	if rp.cancel == nil {
		return
	}
	rp.cancel()
	rp.cancel = nil
	select {
	case err := <-rp.done:
		if err != nil {
			rp.t.Errorf("proxy Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		rp.t.Errorf("proxy did not stop within 30s")
	}
}

// herdBody is what the target answers for path, so that a scrape routed to
// the wrong agent is caught.
func herdBody(path string) []byte {
	return []byte(fmt.Sprintf("# TYPE herd_up gauge\nherd_up{path=%q} 1\n", path))
}

// TestFaultThunderingHerd restarts a proxy under 1,000 agents (100 with
// -short), which all reconnect at once: every one must register again, and
// the agents already back must be scraped correctly and promptly during
// the storm.
func TestFaultThunderingHerd(t *testing.T) {
	// Not parallel: it keeps both cores busy, and the timing bounds of the
	// tests that would run beside it are not about a starved machine.
	n := shortOr(100, 1000)
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(herdBody(strings.TrimPrefix(r.URL.Path, "/")))
	})
	rp := newRestartableProxy(t)
	agents := make([]*client.Agent, n)
	var wg sync.WaitGroup
	for i := range agents {
		path := fmt.Sprintf("herd%04d", i)
		opts := client.DefaultOptions()
		opts.ProxyURLs = []string{rp.agent}
		opts.AgentName = path
		opts.Paths = []client.PathConfig{{Path: path, URL: target.URL + "/" + path}}
		opts.Logger = slog.New(slog.DiscardHandler)
		a, err := client.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			// Close blocks until the agent is down; closing them together
			// keeps the test's end short.
			<-t.Context().Done()
			_ = a.Close()
		})
	}
	t.Cleanup(wg.Wait)
	registered := func() int {
		k := 0
		for _, a := range agents {
			if a.Connected() && a.RegisteredPaths() == 1 {
				k++
			}
		}
		return k
	}
	waitFor(t, fmt.Sprintf("%d agents to register", n), 120*time.Second, func() bool { return registered() == n })

	rp.stop()
	waitFor(t, "every agent to notice the proxy left", 30*time.Second, func() bool {
		return !slices.ContainsFunc(agents, (*client.Agent).Connected)
	})
	// The proxy stays down for a second, part of the fault being staged
	// rather than a wait for a condition: the agents fail their first
	// reconnects and then come back together, spread only by the jitter of
	// their backoff.
	time.Sleep(time.Second)
	rp.start()
	restarted := time.Now()

	// Scrape agents that are back while the rest are still connecting.
	c := newHTTPClient(t)
	var slowest time.Duration
	var scraped, bad int
	var failures []string
	for registered() < n {
		if time.Since(restarted) > 120*time.Second {
			t.Fatalf("only %d of %d agents registered again within 120s", registered(), n)
		}
		i := rand.IntN(n)
		if !agents[i].Connected() || agents[i].RegisteredPaths() != 1 {
			continue
		}
		path := fmt.Sprintf("herd%04d", i)
		r := getTimed(c, "http://"+rp.scrape+"/"+path, promTimeout(10*time.Second, true))
		scraped++
		slowest = max(slowest, r.elapsed)
		if r.err != nil || r.status != http.StatusOK || string(r.body) != string(herdBody(path)) {
			bad++
			failures = append(failures, path+": "+r.String())
		}
	}
	back := time.Since(restarted)
	t.Logf("%d agents registered %v after the restart; %d scrapes meanwhile, slowest %v", n, back.Round(time.Millisecond), scraped, slowest.Round(time.Millisecond))
	if bad > 0 {
		t.Errorf("%d of %d scrapes during the reconnect storm failed: %q", bad, scraped, failures[:min(len(failures), 5)])
	}
	if slowest > 3*time.Second {
		t.Errorf("slowest scrape during the reconnect storm took %v", slowest)
	}
}
