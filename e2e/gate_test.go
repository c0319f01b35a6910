package e2e

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// gate is a target that holds every request until the test opens it or the
// request is cancelled, and reports both events.
type gate struct {
	srv       *httptest.Server
	body      []byte
	arrived   chan struct{}  // one value per request that reached the target
	cancelled chan time.Time // when a held request was cancelled
	open      chan struct{}
	openOnce  sync.Once
}

func newGate(t testing.TB, body []byte) *gate {
	t.Helper()
	g := &gate{
		body:      body,
		arrived:   make(chan struct{}, 256),
		cancelled: make(chan time.Time, 256),
		open:      make(chan struct{}),
	}
	g.srv = newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		g.arrived <- struct{}{}
		select {
		case <-g.open:
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			_, _ = w.Write(g.body)
		case <-r.Context().Done():
			g.cancelled <- time.Now()
		}
	})
	// Registered after the server's own cleanup, so it runs first and no
	// handler is left holding the server's Close.
	t.Cleanup(g.release)
	return g
}

// release lets every held and future request through.
func (g *gate) release() { g.openOnce.Do(func() { close(g.open) }) }

// waitArrived waits until a request has reached the target.
func (g *gate) waitArrived(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(timeout):
		t.Fatalf("no request reached the held target within %v", timeout)
	}
}

// result is the outcome of a scrape made in the background.
type result struct {
	reply
	err  error
	took time.Duration
}

// getAsync scrapes in the background; the result arrives on the channel.
func getAsync(c *http.Client, url string, hdr map[string]string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		r, err := get(c, url, hdr)
		ch <- result{reply: r, err: err, took: time.Since(start)}
	}()
	return ch
}

// await waits for a background scrape.
func await(t testing.TB, ch <-chan result, timeout time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout):
		t.Fatalf("scrape did not finish within %v", timeout)
		return result{}
	}
}
