package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// peakRSS reads a process's peak resident memory (VmHWM) from /proc.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for process %d", pid)
}

// gzipBomb returns a gzip stream of n MiB of zeros, made of repeated
// members so that building it costs one MiB of compression, not n.
func gzipBomb(n int) []byte {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	_, _ = zw.Write(make([]byte, 1<<20))
	_ = zw.Close()
	return bytes.Repeat(member.Bytes(), n)
}

// TestFaultHugeBodies sends bodies that must never be held whole: an
// endless one, one that declares a gigabyte, and a gzip bomb that expands
// to a gigabyte. Each scrape must fail with 413, or as a broken transfer
// once the response has started, never as a 200 that looks complete; the
// agent must stop reading at its limit; and neither process's peak memory
// may grow anywhere near the size of the body.
func TestFaultHugeBodies(t *testing.T) {
	// Not parallel: it keeps both cores busy, and the timing bounds of the
	// tests that would run beside it are not about a starved machine.
	bomb := gzipBomb(1024)
	var endlessSent, declaredSent atomic.Int64
	chunk := bytes.Repeat([]byte("endless_metric{a=\"b\"} 1\n"), 2600) // 65 KB
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/endless":
			for r.Context().Err() == nil {
				n, err := w.Write(chunk)
				endlessSent.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "/declared":
			w.Header().Set("Content-Length", strconv.Itoa(1<<30))
			for r.Context().Err() == nil {
				n, err := w.Write(chunk)
				declaredSent.Add(int64(n))
				if err != nil {
					return
				}
			}
		case "/bomb":
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Length", strconv.Itoa(len(bomb)))
			_, _ = w.Write(bomb)
		case "/small":
			_, _ = w.Write(chunk[:1000])
		}
	})
	p := startObservedProxy(t)
	agent := startAgentProcess(t, "huge", []string{p.agentAddr}, []pathConfig{
		{name: "endless", path: "endless", url: target.URL + "/endless"},
		{name: "declared", path: "declared", url: target.URL + "/declared"},
		{name: "bomb", path: "bomb", url: target.URL + "/bomb"},
		{name: "small", path: "small", url: target.URL + "/small"},
	})
	p.waitAgent(t, "huge", 4, 30*time.Second)
	c := newHTTPClient(t)
	if r := mustGet(t, c, p.url("small"), promText); r.status != http.StatusOK {
		t.Fatalf("warm-up scrape: %d", r.status)
	}
	proxyBase, _ := peakRSS(p.cmd.Process.Pid)
	agentBase, _ := peakRSS(agent.cmd.Process.Pid)
	const limit = 10 << 20 // maxContentLengthMBytes and maxUnzippedContentSizeMBytes

	tests := []struct {
		name string
		path string
		gz   bool
		// sent, when set, is what the target managed to write: the agent
		// must have stopped reading close to its limit.
		sent *atomic.Int64
	}{
		{name: "endless body", path: "endless", gz: true, sent: &endlessSent},
		{name: "endless body, client without gzip", path: "endless", gz: false},
		{name: "declares a gigabyte", path: "declared", gz: true, sent: &declaredSent},
		{name: "gzip bomb, client without gzip", path: "bomb", gz: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sent != nil {
				tt.sent.Store(0)
			}
			r := getTimed(c, p.url(tt.path), promTimeout(30*time.Second, tt.gz))
			t.Logf("%v, %d bytes", r, len(r.raw))
			switch {
			case r.err == nil && r.status == http.StatusRequestEntityTooLarge:
				if !strings.Contains(string(r.body), "exceeds") {
					t.Errorf("413 without a reason: %q", r.body)
				}
			case r.err == nil:
				t.Errorf("got %d with %d bytes; want 413 or a broken transfer", r.status, len(r.body))
			}
			if tt.sent != nil {
				// What the target wrote includes what sat in socket
				// buffers the agent never read: on loopback the receive
				// buffer alone may grow to net.ipv4.tcp_rmem's maximum
				// (32 MiB here). What matters is that the writing stops:
				// the agent cut the body rather than reading it forever.
				waitFor(t, "the target to stop writing", 10*time.Second, func() bool {
					before := tt.sent.Load()
					time.Sleep(100 * time.Millisecond)
					return tt.sent.Load() == before
				})
				if n := tt.sent.Load(); n > limit+48<<20 {
					t.Errorf("the target wrote %d MiB before the agent stopped reading, limit %d MiB", n>>20, limit>>20)
				}
			}
		})
	}
	// A client that accepts gzip gets the bomb as it is: the proxy does not
	// expand what it does not have to.
	t.Run("gzip bomb, client with gzip", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, p.url("bomb"), nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var raw bytes.Buffer
		if _, err := raw.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(raw.Bytes(), bomb) {
			t.Errorf("status %d, %d bytes; want the target's %d compressed bytes unchanged", resp.StatusCode, raw.Len(), len(bomb))
		}
	})

	proxyPeak, _ := peakRSS(p.cmd.Process.Pid)
	agentPeak, _ := peakRSS(agent.cmd.Process.Pid)
	t.Logf("peak RSS: proxy %d -> %d MiB, agent %d -> %d MiB, after about 2 GiB of hostile bodies",
		proxyBase>>20, proxyPeak>>20, agentBase>>20, agentPeak>>20)
	// Holding one limit's worth per scrape is allowed; holding the body is
	// not: a gigabyte would be far past these bounds.
	if proxyPeak-proxyBase > 128<<20 {
		t.Errorf("proxy peak RSS grew by %d MiB", (proxyPeak-proxyBase)>>20)
	}
	if agentPeak-agentBase > 128<<20 {
		t.Errorf("agent peak RSS grew by %d MiB", (agentPeak-agentBase)>>20)
	}
	if r := mustGet(t, c, p.url("small"), promText); r.status != http.StatusOK {
		t.Errorf("scrape after the hostile bodies: %d", r.status)
	}
}
