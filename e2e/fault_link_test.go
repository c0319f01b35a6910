package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/faultnet"
	"github.com/promproxy/promproxy/internal/transport"
)

// TestFaultLinkStalls cuts the link between an agent and the proxy without
// closing anything, as a NAT that forgets a connection or a pulled cable
// does: no FIN, no RST, just silence. Both sides must notice from their
// HTTP/2 PINGs, within the keepalive interval and timeout plus 2 s, scrapes
// meanwhile must fail by their deadline, and the agent must be back as soon
// as the link is.
func TestFaultLinkStalls(t *testing.T) {
	t.Parallel()
	body := exposition(3000)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	p := startProxy(t, nil)
	link, err := faultnet.Listen(p.AgentAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.Close() })
	a := startAgent(t, p, []client.PathConfig{{Path: "remote", URL: target.URL}}, func(o *client.Options) {
		o.AgentName = "remote"
		o.ProxyURLs = []string{link.Addr()}
	})
	startAgent(t, p, []client.PathConfig{{Path: "local", URL: target.URL}}, func(o *client.Options) { o.AgentName = "local" })
	pp := &proxyProcess{rpc: newRPCClient(t, p.AgentAddr().String())}
	pp.waitAgent(t, "remote", 1, 10*time.Second)
	pp.waitAgent(t, "local", 1, 10*time.Second)
	c := newHTTPClient(t)
	stop := keepScraping(t, c, proxyURL(p, "local"), body, 200*time.Millisecond)

	link.Stall()
	stalled := time.Now()
	const deadline = 3 * time.Second
	r := getTimed(c, proxyURL(p, "remote"), promTimeout(deadline, true))
	if r.err != nil || r.status != http.StatusServiceUnavailable || r.elapsed > deadline+500*time.Millisecond {
		t.Errorf("scrape across the stalled link: %v; want 503 within %v", r, deadline)
	}
	var agentSaw, proxySaw time.Duration
	noticeBy := transport.DefaultKeepalive.Interval + transport.DefaultKeepalive.Timeout + 2*time.Second
	waitFor(t, "both sides to notice the dead link", noticeBy+5*time.Second, func() bool {
		if agentSaw == 0 && !a.Connected() {
			agentSaw = time.Since(stalled)
		}
		if proxySaw == 0 {
			gone := true
			for _, ai := range pp.agents(t.Context()) {
				gone = gone && ai.GetAgentName() != "remote"
			}
			if gone {
				proxySaw = time.Since(stalled)
			}
		}
		return agentSaw > 0 && proxySaw > 0
	})
	t.Logf("dead link noticed by the agent after %v, by the proxy after %v", agentSaw.Round(time.Millisecond), proxySaw.Round(time.Millisecond))
	if agentSaw > noticeBy || proxySaw > noticeBy {
		t.Errorf("dead link noticed after %v (agent) and %v (proxy), want at most %v", agentSaw, proxySaw, noticeBy)
	}

	link.Resume()
	resumed := time.Now()
	pp.waitAgent(t, "remote", 1, 30*time.Second)
	waitFor(t, "the agent to see its path registered", 10*time.Second, func() bool { return a.Connected() && a.RegisteredPaths() == 1 })
	back := time.Since(resumed)
	t.Logf("agent registered again %v after the link came back", back.Round(time.Millisecond))
	if back > 15*time.Second {
		t.Errorf("agent took %v to come back after the link did", back)
	}
	if r := mustGet(t, c, proxyURL(p, "remote"), promText); r.status != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Errorf("scrape after the link came back: %d %.100q", r.status, r.body)
	}
	if ok, bad := stop(); len(bad) > 0 || ok == 0 {
		t.Errorf("the directly connected agent during the stall: %d good scrapes, %d bad: %q", ok, len(bad), bad)
	}
}

// TestFaultLinkReset has a middlebox reset the agent's connection while a
// scrape waits on a slow target: the scrape must fail at once rather than
// at its deadline, and the agent must be back within its first backoff.
func TestFaultLinkReset(t *testing.T) {
	t.Parallel()
	body := exposition(3000)
	g := newGate(t, body)
	p := startProxy(t, nil)
	link, err := faultnet.Listen(p.AgentAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = link.Close() })
	a := startAgent(t, p, []client.PathConfig{{Path: "remote", URL: g.srv.URL}}, func(o *client.Options) {
		o.ProxyURLs = []string{link.Addr()}
	})
	waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
	c := newHTTPClient(t)
	res := make(chan timed, 1)
	go func() { res <- getTimed(c, proxyURL(p, "remote"), promTimeout(10*time.Second, true)) }()
	g.waitArrived(t, 10*time.Second)

	link.Reset()
	reset := time.Now()
	r := <-res
	t.Logf("scrape in flight: %v", r)
	if r.err != nil || r.status != http.StatusServiceUnavailable || !bytes.Contains(r.body, []byte("disconnected")) {
		t.Errorf("scrape in flight during the reset: %v; want 503 agent disconnected", r)
	}
	if d := time.Since(reset); d > 2*time.Second {
		t.Errorf("the scrape in flight failed %v after the reset, want at once", d)
	}
	g.release()
	waitFor(t, "the agent to register again", 10*time.Second, func() bool {
		return a.Connected() && a.RegisteredPaths() == 1 && link.Conns() > 0
	})
	t.Logf("agent registered again %v after the reset", time.Since(reset).Round(time.Millisecond))
	if r := mustGet(t, c, proxyURL(p, "remote"), promText); r.status != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Errorf("scrape after the reset: %d %.100q", r.status, r.body)
	}
}
