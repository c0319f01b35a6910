package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/server"
)

// testLogger forwards logs to t.Log so they appear only for failing tests.
func testLogger(t testing.TB) *slog.Logger { return testlog.Logger(t) }

// startProxy runs a proxy on loopback ports until the test ends.
func startProxy(t testing.TB, mutate func(*server.Options)) *server.Proxy {
	t.Helper()
	opts := server.DefaultOptions()
	opts.ListenAddr = "127.0.0.1:0"
	opts.AgentListenAddr = "127.0.0.1:0"
	opts.Logger = testLogger(t)
	opts.Registerer = prometheus.NewRegistry()
	if mutate != nil {
		mutate(&opts)
	}
	p, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("proxy Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("proxy did not stop within 30s")
		}
	})
	return p
}

// startAgent runs an agent against p until the test ends.
func startAgent(t testing.TB, p *server.Proxy, paths []client.PathConfig, mutate func(*client.Options)) *client.Agent {
	t.Helper()
	opts := client.DefaultOptions()
	opts.ProxyURLs = []string{p.AgentAddr().String()}
	opts.AgentName = "test-agent"
	opts.Paths = paths
	opts.Logger = testLogger(t)
	opts.Registerer = prometheus.NewRegistry()
	if mutate != nil {
		mutate(&opts)
	}
	a, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrape GETs url like Prometheus would.
func scrape(t testing.TB, c *http.Client, url string, hdr map[string]string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// exposition returns realistic exposition text of about size bytes.
func exposition(size int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < size; i++ {
		if i%50 == 0 {
			fmt.Fprintf(&b, "# HELP metric_%d A metric family used in tests.\n# TYPE metric_%d gauge\n", i/50, i/50)
		}
		fmt.Fprintf(&b, "metric_%d{instance=\"host-%d\",job=\"node\",le=\"%d\"} %d.%06d\n", i/50, i%7, i%13, i*31, i%1000003)
	}
	return []byte(b.String()[:size])
}

// newTarget serves body with the given content type.
func newTarget(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func proxyURL(p *server.Proxy, path string) string {
	return "http://" + p.Addr().String() + "/" + path
}
