package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
)

// TestFaultTargets breaks the target in every way a real exporter has been
// seen to: each scrape must fail before Prometheus' deadline with a status
// and a reason that say what went wrong, and never come back as a 200 with
// a partial body, while the agent's healthy path keeps serving.
func TestFaultTargets(t *testing.T) {
	// Not parallel: each answer is held to the scrape timeout plus a
	// quarter second, a bound about the proxy, which a process shared with
	// the other tests' bodies and restarts would turn into one about them.
	const deadline = 3 * time.Second
	head := func(c net.Conn, extra string) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"+extra+"\r\n")
	}
	half := strings.Repeat("metric_a 1\n", 500)      // 5,500 bytes
	big := strings.Repeat("metric_b 12345\n", 10000) // 150,000 bytes: several frames
	tests := []struct {
		name string
		// serve is an http handler, or raw is a raw TCP handler.
		serve func(w http.ResponseWriter, r *http.Request)
		raw   func(c net.Conn, r *http.Request)
		// status is the answer Prometheus must get, and reason a word the
		// answer's text must contain. Timeouts say "time" either way: the
		// agent's "did not answer in time", or, on a machine so loaded that
		// the agent's answer comes late, the proxy's own "did not answer
		// within the scrape timeout".
		status int
		reason string
	}{
		{name: "hangs before answering", status: http.StatusServiceUnavailable, reason: "time",
			serve: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
		{name: "hangs after the headers", status: http.StatusServiceUnavailable, reason: "time",
			serve: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}},
		{name: "trickles 1 byte per second", status: http.StatusServiceUnavailable, reason: "time",
			serve: func(w http.ResponseWriter, r *http.Request) { trickle(w, r, -1) }},
		{name: "trickles with a Content-Length", status: http.StatusServiceUnavailable, reason: "time",
			serve: func(w http.ResponseWriter, r *http.Request) { trickle(w, r, 1000) }},
		{name: "closes mid-body", status: http.StatusBadGateway, reason: "target",
			raw: func(c net.Conn, _ *http.Request) {
				head(c, fmt.Sprintf("Content-Length: %d\r\n", 2*len(half)))
				_, _ = io.WriteString(c, half)
			}},
		{name: "closes mid-body, chunked", status: http.StatusBadGateway, reason: "target",
			raw: func(c net.Conn, _ *http.Request) {
				head(c, "Transfer-Encoding: chunked\r\n")
				fmt.Fprintf(c, "%x\r\n%s\r\n%x\r\n%s", len(half), half, len(half), half[:100])
			}},
		{name: "closes mid-body of a large body", status: http.StatusBadGateway, reason: "target",
			raw: func(c net.Conn, _ *http.Request) {
				head(c, fmt.Sprintf("Content-Length: %d\r\n", 2*len(big)))
				_, _ = io.WriteString(c, big)
			}},
		{name: "closes mid-body of a large chunked body", status: http.StatusBadGateway, reason: "target",
			raw: func(c net.Conn, _ *http.Request) {
				head(c, "Transfer-Encoding: chunked\r\n")
				fmt.Fprintf(c, "%x\r\n%s\r\n", len(big), big)
			}},
		{name: "declares more than it sends, then hangs", status: http.StatusServiceUnavailable, reason: "time",
			raw: func(c net.Conn, r *http.Request) {
				head(c, fmt.Sprintf("Content-Length: %d\r\n", 2*len(half)))
				_, _ = io.WriteString(c, half)
				_, _ = c.Read(make([]byte, 1)) // until the agent gives up
			}},
		{name: "resets the connection", status: http.StatusBadGateway, reason: "connection reset",
			raw: func(c net.Conn, _ *http.Request) { _ = c.(*net.TCPConn).SetLinger(0) }},
		{name: "answers garbage", status: http.StatusBadGateway, reason: "malformed",
			raw: func(c net.Conn, _ *http.Request) { _, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.6\r\n\r\n") }},
	}

	good := exposition(20 << 10)
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(good) })
	paths := []client.PathConfig{}
	for i, tt := range tests {
		p := fmt.Sprintf("fault%d", i)
		if tt.serve != nil {
			mux.HandleFunc("/"+p, tt.serve)
			paths = append(paths, client.PathConfig{Path: p, URL: "PLACEHOLDER/" + p})
		} else {
			paths = append(paths, client.PathConfig{Path: p, URL: rawTarget(t, tt.raw) + "/metrics"})
		}
	}
	srv := newTarget(t, mux.ServeHTTP)
	for i := range paths {
		paths[i].URL = strings.Replace(paths[i].URL, "PLACEHOLDER", srv.URL, 1)
	}
	paths = append(paths, client.PathConfig{Path: "good", URL: srv.URL + "/good"})
	p := startProxy(t, nil)
	a := startAgent(t, p, paths, nil)
	waitFor(t, "paths registered", 10*time.Second, func() bool { return a.RegisteredPaths() == len(paths) })
	c := newHTTPClient(t)
	stop := keepScraping(t, c, proxyURL(p, "good"), good, 100*time.Millisecond)

	// The cases run at once, as goroutines rather than parallel subtests,
	// so that their timeouts overlap instead of queueing behind -parallel.
	got := make([][2]timed, len(tests))
	var wg sync.WaitGroup
	for i := range tests {
		for j, gz := range []bool{true, false} {
			wg.Go(func() {
				got[i][j] = getTimed(c, proxyURL(p, fmt.Sprintf("fault%d", i)), promTimeout(deadline, gz))
			})
		}
	}
	wg.Wait()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for j, r := range got[i] {
				gz := j == 0
				t.Logf("gzip=%v: %v", gz, r)
				if r.err != nil || r.status != tt.status || !strings.Contains(string(r.body), tt.reason) {
					t.Errorf("gzip=%v: got %v; want %d mentioning %q", gz, r, tt.status, tt.reason)
				}
				// The proxy's deadline is the scrape timeout; writing the
				// answer takes a moment more.
				if r.elapsed > deadline+250*time.Millisecond {
					t.Errorf("gzip=%v: answered after %v, past the %v scrape timeout", gz, r.elapsed, deadline)
				}
			}
		})
	}
	ok, bad := stop()
	if len(bad) > 0 || ok == 0 {
		t.Errorf("the healthy path during the faults: %d good scrapes, %d bad: %q", ok, len(bad), bad)
	}
}

// trickle writes one byte a second until the client goes away, declaring
// length when it is not negative.
func trickle(w http.ResponseWriter, r *http.Request, length int) {
	if length >= 0 {
		w.Header().Set("Content-Length", fmt.Sprint(length))
	}
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for range length + 1<<20 {
		if _, err := w.Write([]byte("m")); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-tk.C:
		}
	}
}

// TestFaultTargetLiesShort covers a target that declares a shorter body than
// it sends: by HTTP the body is the declared bytes, so that is what
// Prometheus gets, and the extra bytes must not leak into the next scrape
// on a reused connection.
func TestFaultTargetLiesShort(t *testing.T) {
	t.Parallel()
	url := rawTarget(t, func(c net.Conn, _ *http.Request) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nmetric 1\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nevil 666\n")
		_, _ = c.Read(make([]byte, 1))
	})
	p := startProxy(t, nil)
	a := startAgent(t, p, []client.PathConfig{{Path: "short", URL: url}}, nil)
	waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
	c := newHTTPClient(t)
	for i := range 3 {
		r := getTimed(c, proxyURL(p, "short"), promTimeout(3*time.Second, i%2 == 0))
		if r.err != nil || r.status != http.StatusOK || string(r.body) != "metric 1\n" {
			t.Fatalf("scrape %d: %v; want 200 with the 9 declared bytes", i, r)
		}
	}
}
