package e2e

import (
	"bytes"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// agentGoneWithin is how fast scrapes of a killed agent's paths must fail.
const agentGoneWithin = time.Second

func TestProcessAgentKilled(t *testing.T) {
	t.Parallel()
	held := newGate(t, exposition(1<<10))
	body := exposition(2 << 10)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	tun := startTunnel(t, []pathConfig{
		{name: "held", path: "held", url: held.srv.URL + "/metrics"},
		{name: "quick", path: "quick", url: target.URL + "/metrics"},
	})
	c := newHTTPClient(t)
	if r := mustGet(t, c, tun.proxy.url("quick"), promText); r.status != http.StatusOK {
		t.Fatalf("before the kill: status %d: %s", r.status, r.body)
	}

	inFlight := getAsync(c, tun.proxy.url("held"), promText)
	held.waitArrived(t, 10*time.Second)
	tun.agent.kill(t)
	killed := time.Now()

	// The scrape the agent was working on fails at once, not at its
	// 30 s deadline.
	r := await(t, inFlight, 10*time.Second)
	if r.err != nil || r.status != http.StatusServiceUnavailable {
		t.Fatalf("in-flight scrape after SIGKILL: status %d, err %v, want 503", r.status, r.err)
	}
	if d := time.Since(killed); d > agentGoneWithin {
		t.Errorf("in-flight scrape answered %v after SIGKILL, want within %v", d, agentGoneWithin)
	}
	// So do new scrapes of its paths, with a reason.
	for _, path := range []string{"quick", "held"} {
		r := mustGet(t, c, tun.proxy.url(path), promText)
		if r.status != http.StatusServiceUnavailable {
			t.Errorf("scrape of %s after SIGKILL: status %d, want 503; body %q", path, r.status, r.body)
		}
		if !strings.Contains(string(r.body), path) {
			t.Errorf("scrape of %s after SIGKILL: reason %q does not name the path", path, r.body)
		}
	}
	if d := time.Since(killed); d > agentGoneWithin {
		t.Errorf("scrapes failed %v after SIGKILL, want within %v", d, agentGoneWithin)
	}
	if agents := tun.proxy.agents(t.Context()); len(agents) != 0 {
		t.Errorf("proxy still lists %d agents after SIGKILL", len(agents))
	}
}

func TestProcessProxyRestart(t *testing.T) {
	t.Parallel()
	body := exposition(50 << 10)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	tun := startTunnel(t, []pathConfig{{name: "app", path: "app", url: target.URL + "/metrics"}})
	c := newHTTPClient(t)
	check := func(p *proxyProcess, when string) {
		t.Helper()
		r := mustGet(t, c, p.url("app"), withGzip(promText, true))
		if r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Fatalf("%s: status %d, %d bytes, want 200 with %d bytes", when, r.status, len(r.body), len(body))
		}
	}
	check(tun.proxy, "before the restart")

	tun.proxy.kill(t)
	_, port, _ := net.SplitHostPort(tun.proxy.scrapeAddr)
	_, agentPort, _ := net.SplitHostPort(tun.proxy.agentAddr)
	restarted := startProxyProcess(t, "--port", port, "--agent_port", agentPort)
	if restarted.scrapeAddr != tun.proxy.scrapeAddr || restarted.agentAddr != tun.proxy.agentAddr {
		t.Fatalf("restarted proxy listens on %s and %s, want %s and %s", restarted.scrapeAddr, restarted.agentAddr, tun.proxy.scrapeAddr, tun.proxy.agentAddr)
	}

	// The same agent process comes back on its own: its launch id is
	// unchanged, its session is new.
	info := restarted.waitAgent(t, tun.info.GetAgentName(), 1, 20*time.Second)
	if info.GetLaunchId() != tun.info.GetLaunchId() {
		t.Errorf("launch id %q after the restart, want %q: the agent process should have reconnected, not restarted", info.GetLaunchId(), tun.info.GetLaunchId())
	}
	check(restarted, "after the restart")
}

// readHeaderTimeout is the agent listener's ReadHeaderTimeout; a session
// must outlive it.
const readHeaderTimeout = 10 * time.Second

func TestProcessLongLivedSession(t *testing.T) {
	if testing.Short() {
		t.Skip("holds a session for longer than the agent listener's ReadHeaderTimeout")
	}
	t.Parallel()
	body := exposition(1 << 10)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	tun := startTunnel(t, []pathConfig{{name: "app", path: "app", url: target.URL + "/metrics"}})
	c := newHTTPClient(t)
	connectedAt := tun.info.GetConnectedAt().AsTime()

	// Watch the session until it is older than ReadHeaderTimeout: the proxy
	// must list the same session (same agent id) the whole time, and
	// scrapes must work throughout.
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for time.Since(connectedAt) < readHeaderTimeout+2*time.Second {
		<-tick.C
		var ids []string
		for _, a := range tun.proxy.agents(t.Context()) {
			ids = append(ids, a.GetAgentId())
		}
		if len(ids) != 1 || ids[0] != tun.info.GetAgentId() {
			t.Fatalf("%v into the session the proxy lists agent ids %q, want only %q: the session was replaced",
				time.Since(connectedAt).Round(time.Millisecond), ids, tun.info.GetAgentId())
		}
		if r := mustGet(t, c, tun.proxy.url("app"), promText); r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Fatalf("%v into the session: status %d, %d bytes", time.Since(connectedAt).Round(time.Millisecond), r.status, len(r.body))
		}
	}
	if n := strings.Count(tun.agent.stderr.String(), "connected to proxy"); n != 1 {
		t.Errorf("agent logged %d connections, want 1", n)
	}
}
