package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fastEnough is how long a scrape of a fast target may take while another
// scrape of the same agent is stuck. A scrape held up behind the stuck one
// would take the whole 30 s scrape timeout, so the margin is only for a
// loaded CI machine.
const fastEnough = 2 * time.Second

// randomBody returns n incompressible bytes, the same on every call.
func randomBody(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}

func TestProcessSlowTargetDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	slow := newGate(t, exposition(4<<10))
	fastBody := exposition(1 << 10)
	largeBody := randomBody(30 << 20)
	mux := http.NewServeMux()
	mux.HandleFunc("/fast", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(fastBody) })
	mux.HandleFunc("/large", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(largeBody)
	})
	target := newTarget(t, mux.ServeHTTP)
	tun := startTunnel(t, []pathConfig{
		{name: "slow", path: "slow", url: slow.srv.URL + "/metrics"},
		{name: "fast", path: "fast", url: target.URL + "/fast"},
		{name: "large", path: "large", url: target.URL + "/large"},
	}, "--max_content_length_mbytes", "64")
	c := newHTTPClient(t)

	scrapeFast := func(t *testing.T, while string) {
		t.Helper()
		for range 5 {
			start := time.Now()
			r := mustGet(t, c, tun.proxy.url("fast"), withGzip(promText, true))
			if took := time.Since(start); took > fastEnough {
				t.Errorf("fast path took %v while %s", took, while)
			}
			if r.status != http.StatusOK || !bytes.Equal(r.body, fastBody) {
				t.Fatalf("fast path while %s: status %d, %d bytes, want 200 with %d bytes", while, r.status, len(r.body), len(fastBody))
			}
		}
	}

	t.Run("slow target", func(t *testing.T) {
		pending := getAsync(c, tun.proxy.url("slow"), promText)
		slow.waitArrived(t, 10*time.Second)
		scrapeFast(t, "the slow target holds its scrape")
		slow.release()
		r := await(t, pending, 10*time.Second)
		if r.err != nil || r.status != http.StatusOK || !bytes.Equal(r.body, slow.body) {
			t.Fatalf("slow path after release: status %d, %d bytes, err %v; want 200 with %d bytes", r.status, len(r.body), r.err, len(slow.body))
		}
	})

	t.Run("large body read slowly", func(t *testing.T) {
		// Prometheus stops reading a 30 MB body after its first bytes. The
		// proxy's credit stops the agent from sending more of it, and the
		// agent's other scrapes must keep flowing on the shared stream.
		req, _ := http.NewRequest(http.MethodGet, tun.proxy.url("large"), nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		head := make([]byte, 64<<10)
		if _, err := io.ReadFull(body, head); err != nil {
			t.Fatalf("first 64 KiB of the large body: %v", err)
		}
		scrapeFast(t, "a 30 MB body waits for its reader")
		rest, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("rest of the large body: %v", err)
		}
		if got := append(head, rest...); !bytes.Equal(got, largeBody) {
			t.Fatalf("large body differs: %d bytes, want %d; first difference at byte %d", len(got), len(largeBody), firstDiff(got, largeBody))
		}
	})
}

func TestProcessScrapeTimeoutHeader(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		timeout time.Duration
	}{
		{name: "half a second", timeout: 500 * time.Millisecond},
		{name: "one and a half seconds", timeout: 1500 * time.Millisecond},
	}
	var paths []pathConfig
	gates := map[string]*gate{}
	for _, tc := range cases {
		g := newGate(t, []byte("too_late 1\n"))
		gates[tc.name] = g
		paths = append(paths, pathConfig{name: tc.name, path: "held_" + strconv.Itoa(len(paths)), url: g.srv.URL + "/metrics"})
	}
	tun := startTunnel(t, paths)
	c := newHTTPClient(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hdr := withGzip(promText, true)
			hdr["X-Prometheus-Scrape-Timeout-Seconds"] = strconv.FormatFloat(tc.timeout.Seconds(), 'f', -1, 64)
			start := time.Now()
			r, err := get(c, tun.proxy.url(paths[i].path), hdr)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %q", r.status, r.body)
			}
			// The target never answers: the answer must come from the
			// deadline, neither early nor after the 30 s it would wait.
			if took < tc.timeout*8/10 || took > tc.timeout+time.Second {
				t.Errorf("503 after %v, want close to the %v scrape timeout", took, tc.timeout)
			}
			if !strings.Contains(string(r.body), "time") {
				t.Errorf("reason %q does not say the scrape timed out", r.body)
			}
			// The agent got the deadline too and gave up on the target.
			select {
			case at := <-gates[tc.name].cancelled:
				if d := at.Sub(start); d > tc.timeout+time.Second {
					t.Errorf("the agent abandoned the target's request %v after the scrape started, want within the %v timeout", d, tc.timeout)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("the agent still holds the target's request 5s after the %v scrape timeout", tc.timeout)
			}
		})
	}
}

func TestProcessConcurrentScrapes(t *testing.T) {
	t.Parallel()
	sizes := []int{300, 20 << 10, 200 << 10, 1 << 20}
	bodies := map[string][]byte{}
	var paths []pathConfig
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(bodies[r.URL.Path])
	})
	for i, n := range sizes {
		p := fmt.Sprintf("/b%d", i)
		bodies[p] = exposition(n)
		paths = append(paths, pathConfig{name: p, path: fmt.Sprintf("concurrent_%d", i), url: target.URL + p})
	}
	tun := startTunnel(t, paths)
	c := newHTTPClient(t)

	const scrapes = 100
	var wg sync.WaitGroup
	errs := make(chan error, scrapes)
	for i := range scrapes {
		wg.Go(func() {
			pc := paths[i%len(paths)]
			want := bodies[strings.TrimPrefix(pc.url, target.URL)]
			r, err := get(c, tun.proxy.url(pc.path), withGzip(promText, i%3 != 0))
			switch {
			case err != nil:
				errs <- fmt.Errorf("scrape %d of %s: %w", i, pc.path, err)
			case r.status != http.StatusOK:
				errs <- fmt.Errorf("scrape %d of %s: status %d: %.200s", i, pc.path, r.status, r.body)
			case !bytes.Equal(r.body, want):
				errs <- fmt.Errorf("scrape %d of %s: %d bytes, want %d; first difference at byte %d", i, pc.path, len(r.body), len(want), firstDiff(r.body, want))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
