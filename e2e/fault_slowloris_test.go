package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/server"
)

// slowClient opens a connection to addr, writes prefix and then one byte of
// drip per second, and reports how long the server took to close it.
func slowClient(addr string, prefix, drip []byte, limit time.Duration, opened func()) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	opened()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		// Whatever the server answers, the connection ends when it closes.
		_, _ = io.Copy(io.Discard, c)
	}()
	if _, err := c.Write(prefix); err != nil {
		return time.Since(start), nil
	}
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start), nil
		case <-tk.C:
			if time.Since(start) > limit {
				return time.Since(start), nil
			}
			_, _ = c.Write(drip[i%len(drip) : i%len(drip)+1])
		}
	}
}

// TestFaultSlowloris holds many connections open on every listener by
// sending requests one byte a second. The server timeouts must cut each one
// (the header timeout on the HTTP/1 listeners, the HTTP/2 preface timeout
// and PINGs on the agent listener) while normal clients are served.
func TestFaultSlowloris(t *testing.T) {
	t.Parallel()
	body := exposition(4000)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	reg := prometheus.NewRegistry()
	p := startProxy(t, func(o *server.Options) {
		o.AdminEnabled, o.AdminListenAddr = true, "127.0.0.1:0"
		o.MetricsEnabled, o.MetricsListenAddr = true, "127.0.0.1:0"
		o.Registerer, o.Gatherer = reg, reg
	})
	a := startAgent(t, p, []client.PathConfig{{Path: "app", URL: target.URL}}, nil)
	waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })

	http1 := []byte("GET /app HTTP/1.1\r\nHost: proxy\r\n")
	header := []byte("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
	preface := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	settings := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0} // empty SETTINGS frame
	headersFrame := []byte{0, 0x40, 0, 1, 0x4, 0, 0, 0, 1}
	// The bounds follow the servers' settings: the header timeout (10 s) on
	// the HTTP/1 listeners and for the HTTP/2 preface; on an established
	// HTTP/2 connection, a PING after the keepalive interval of silence and
	// its timeout. Each gets 2 s of margin.
	const headerTimeout = 10 * time.Second
	pingCut := transport.DefaultKeepalive.Interval + transport.DefaultKeepalive.Timeout
	attacks := []struct {
		name         string
		addr         string
		prefix, drip []byte
		cut          time.Duration // the timeout that must end it, plus a margin
	}{
		{name: "scrape port, slow headers", addr: p.Addr().String(), prefix: http1, drip: header, cut: headerTimeout + 2*time.Second},
		{name: "admin port, slow headers", addr: p.AdminAddr().String(), prefix: []byte("GET /ping HTTP/1.1\r\n"), drip: header, cut: headerTimeout + 2*time.Second},
		{name: "metrics port, slow headers", addr: p.MetricsAddr().String(), prefix: []byte("GET /metrics HTTP/1.1\r\n"), drip: header, cut: headerTimeout + 2*time.Second},
		{name: "agent port, slow preface", addr: p.AgentAddr().String(), prefix: nil, drip: preface, cut: headerTimeout + 2*time.Second},
		{name: "agent port, slow frame", addr: p.AgentAddr().String(), prefix: append(append([]byte{}, preface...), settings...), drip: headersFrame, cut: max(headerTimeout, pingCut) + 2*time.Second},
		{name: "agent port, silent after preface", addr: p.AgentAddr().String(), prefix: append(append([]byte{}, preface...), settings...), drip: settings[:1], cut: max(headerTimeout, pingCut) + 2*time.Second},
	}
	const perAttack = 30
	took := make([][]time.Duration, len(attacks))
	var wg sync.WaitGroup
	var opened atomic.Int64
	for i, at := range attacks {
		took[i] = make([]time.Duration, perAttack)
		for j := range perAttack {
			wg.Go(func() {
				d, err := slowClient(at.addr, at.prefix, at.drip, 30*time.Second, func() { opened.Add(1) })
				if err != nil {
					t.Errorf("%s: %v", at.name, err)
				}
				took[i][j] = d
			})
		}
	}

	// Meanwhile everyone else is served: scrapes, the admin and metrics
	// listeners, and a new agent.
	c := newHTTPClient(t)
	waitFor(t, "the slow connections to be open", 5*time.Second, func() bool { return opened.Load() == int64(len(attacks)*perAttack) })
	for _, u := range []string{proxyURL(p, "app"), "http://" + p.AdminAddr().String() + "/ping", "http://" + p.MetricsAddr().String() + "/metrics"} {
		r := getTimed(c, u, promText)
		if r.err != nil || r.status != http.StatusOK || r.elapsed > 2*time.Second {
			t.Errorf("%s during the attack: %v", u, r)
		}
	}
	late := startAgent(t, p, []client.PathConfig{{Path: "late", URL: target.URL}}, func(o *client.Options) { o.AgentName = "late" })
	waitFor(t, "a new agent to register during the attack", 5*time.Second, func() bool { return late.RegisteredPaths() == 1 })
	if r := mustGet(t, c, proxyURL(p, "late"), promText); r.status != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Errorf("new agent's scrape during the attack: %d", r.status)
	}

	wg.Wait()
	for i, at := range attacks {
		t.Run(at.name, func(t *testing.T) {
			longest := time.Duration(0)
			for _, d := range took[i] {
				longest = max(longest, d)
			}
			t.Logf("%d connections, the longest cut after %v", perAttack, longest.Round(time.Millisecond))
			if longest > at.cut {
				t.Errorf("a slow connection lasted %v, want it cut within %v", longest, at.cut)
			}
		})
	}
}
