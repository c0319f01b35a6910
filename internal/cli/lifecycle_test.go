package cli

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// blockingTarget serves metrics, holding each request until released.
type blockingTarget struct {
	srv      *httptest.Server
	entered  chan struct{}
	release  chan struct{}
	once     sync.Once
	holdNext bool
}

func newBlockingTarget(t *testing.T, hold bool) *blockingTarget {
	b := &blockingTarget{entered: make(chan struct{}, 16), release: make(chan struct{}), holdNext: hold}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.holdNext {
			b.entered <- struct{}{}
			select {
			case <-b.release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "# TYPE up gauge\nup 1\n")
	}))
	t.Cleanup(func() {
		b.unblock()
		b.srv.Close()
	})
	return b
}

func (b *blockingTarget) unblock() { b.once.Do(func() { close(b.release) }) }

// agentFile writes an agent config serving target at path "app".
func agentFile(t *testing.T, target string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	body := fmt.Sprintf("agent:\n  pathConfigs:\n    - name: app\n      path: app\n      url: %s/metrics\n      labels: '{\"team\": \"a\"}'\n", target)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAgentHealthcheck(t *testing.T) {
	t.Parallel()
	target := newBlockingTarget(t, false)
	t.Run("unhealthy without a proxy", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		_ = ln.Close()
		a := start(t, runAgent, []string{"-c", agentFile(t, target.srv.URL), "--proxy", closed, "--admin"}, nil)
		code, h := healthOf(t, a.addrs["admin"])
		if code != http.StatusServiceUnavailable || h.Healthy || h.Checks["proxy_connection"] != "not connected to a proxy" {
			t.Errorf("/healthcheck = %d %+v, want 503 not connected", code, h)
		}
	})
	t.Run("healthy when connected and registered", func(t *testing.T) {
		t.Parallel()
		p := start(t, runProxy, nil, nil)
		a := start(t, runAgent, []string{"-c", agentFile(t, target.srv.URL), "--admin", "--metrics"},
			map[string]string{"PROXY_HOSTNAME": p.addrs["agent"].String()})
		waitFor(t, "a healthy agent", func() bool { code, _ := healthOf(t, a.addrs["admin"]); return code == 200 })
		if code, body := get(t, url(p.addrs["scrape"], "/app")); code != 200 || !strings.Contains(body, "up 1") {
			t.Errorf("scrape through the proxy = %d %q", code, body)
		}
		if code, body := get(t, url(a.addrs["admin"], "/ping")); code != 200 || body != "pong" {
			t.Errorf("agent /ping = %d %q", code, body)
		}
		if code, _ := get(t, url(a.addrs["metrics"], "/metrics")); code != 200 {
			t.Errorf("agent /metrics = %d", code)
		}
	})
}

// scrapeAsync starts a scrape and returns its outcome later.
func scrapeAsync(t *testing.T, u string) <-chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := http.Get(u)
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	return out
}

func TestProxyDrainsScrapesOnShutdown(t *testing.T) {
	t.Parallel()
	target := newBlockingTarget(t, true)
	p := start(t, runProxy, []string{"--admin"}, nil)
	a := start(t, runAgent, []string{"-c", agentFile(t, target.srv.URL), "--admin", "--proxy", p.addrs["agent"].String()}, nil)
	waitFor(t, "a healthy agent", func() bool { code, _ := healthOf(t, a.addrs["admin"]); return code == 200 })

	result := scrapeAsync(t, url(p.addrs["scrape"], "/app"))
	<-target.entered
	p.stop() // SIGTERM
	waitFor(t, "the proxy to report it is shutting down", func() bool {
		code, h := healthOf(t, p.addrs["admin"])
		return code == http.StatusServiceUnavailable && h.Checks["listeners"] == "shutting down"
	})
	if resp, err := http.Get(url(p.addrs["scrape"], "/app")); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("a new scrape succeeded during shutdown")
		}
	}
	target.unblock()
	if got := <-result; got != "200 # TYPE up gauge\nup 1\n" {
		t.Errorf("scrape in flight = %q, want it to complete", got)
	}
	if err := p.wait(t); err != nil {
		t.Errorf("proxy exit = %v, want nil (exit 0)", err)
	}
}

func TestAgentFinishesFetchesOnShutdown(t *testing.T) {
	t.Parallel()
	target := newBlockingTarget(t, true)
	p := start(t, runProxy, nil, nil)
	a := start(t, runAgent, []string{"-c", agentFile(t, target.srv.URL), "--admin", "--proxy", p.addrs["agent"].String()}, nil)
	waitFor(t, "a healthy agent", func() bool { code, _ := healthOf(t, a.addrs["admin"]); return code == 200 })

	result := scrapeAsync(t, url(p.addrs["scrape"], "/app"))
	<-target.entered
	a.stop() // SIGTERM
	waitFor(t, "the agent to start shutting down", func() bool { return strings.Contains(a.stderr.String(), "shutting down") })
	target.unblock()
	if got := <-result; got != "200 # TYPE up gauge\nup 1\n" {
		t.Errorf("scrape in flight = %q, want it to complete", got)
	}
	if err := a.wait(t); err != nil {
		t.Errorf("agent exit = %v, want nil (exit 0)", err)
	}
	// The agent unregistered: the path is gone from the proxy.
	waitFor(t, "the path to be unregistered", func() bool { code, _ := get(t, url(p.addrs["scrape"], "/app")); return code != 200 })
}

func TestProxyUnhealthyWithTooManyScrapesInFlight(t *testing.T) {
	t.Parallel()
	target := newBlockingTarget(t, true)
	p := start(t, runProxy, []string{"--admin", "-Dproxy.internal.scrapeRequestMapUnhealthySize=1"}, nil)
	a := start(t, runAgent, []string{"-c", agentFile(t, target.srv.URL), "--admin", "--proxy", p.addrs["agent"].String(),
		"--max_concurrent_clients", "2"}, nil)
	waitFor(t, "a healthy agent", func() bool { code, _ := healthOf(t, a.addrs["admin"]); return code == 200 })
	if code, h := healthOf(t, p.addrs["admin"]); code != 200 || h.Checks["scrapes_in_flight"] != "ok" {
		t.Fatalf("idle proxy /healthcheck = %d %+v", code, h)
	}
	first, second := scrapeAsync(t, url(p.addrs["scrape"], "/app")), scrapeAsync(t, url(p.addrs["scrape"], "/app"))
	<-target.entered
	<-target.entered
	code, h := healthOf(t, p.addrs["admin"])
	if code != http.StatusServiceUnavailable || h.Checks["scrapes_in_flight"] != "2 in flight, more than 1" {
		t.Errorf("busy proxy /healthcheck = %d %+v, want 503 with 2 in flight", code, h)
	}
	target.unblock()
	<-first
	<-second
}
