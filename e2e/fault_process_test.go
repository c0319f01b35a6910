package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/promproxy/promproxy/internal/transport"
)

// agentGone waits until the proxy no longer lists an agent called name and
// returns when it noticed.
func (p *proxyProcess) agentGone(t testing.TB, name string, timeout time.Duration) time.Time {
	t.Helper()
	waitFor(t, fmt.Sprintf("agent %q to leave the proxy", name), timeout, func() bool {
		agents := p.agents(t.Context())
		if agents == nil {
			return false // the proxy did not answer: no conclusion
		}
		for _, a := range agents {
			if a.GetAgentName() == name {
				return false
			}
		}
		return true
	})
	return time.Now()
}

// TestFaultAgentKilledMidBody kills an agent while a 30 MB body is on its
// way: Prometheus must see the transfer break at once, never a 200 that
// looks complete, and the proxy's other agent must not notice.
func TestFaultAgentKilledMidBody(t *testing.T) {
	t.Parallel()
	const size = 30 << 20
	body := exposition(size)
	release := make(chan struct{})
	var blockOnce sync.Once
	blocked := make(chan struct{})
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/other" {
			_, _ = w.Write(body[:10000])
			return
		}
		// Send the first part, then hold the rest back until the agent has
		// been killed, so the kill is sure to land mid-body.
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = w.Write(body[:4<<20])
		w.(http.Flusher).Flush()
		blockOnce.Do(func() { close(blocked) })
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(body[4<<20:])
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := startProxyProcess(t)
	victim := startAgentProcess(t, "victim", []string{p.agentAddr}, []pathConfig{{name: "big", path: "big", url: target.URL + "/big"}}, "--max_content_length_mbytes", "64")
	startAgentProcess(t, "bystander", []string{p.agentAddr}, []pathConfig{{name: "other", path: "other", url: target.URL + "/other"}})
	p.waitAgent(t, "victim", 1, 30*time.Second)
	p.waitAgent(t, "bystander", 1, 30*time.Second)

	for _, gz := range []bool{true, false} {
		t.Run("gzip="+strconv.FormatBool(gz), func(t *testing.T) {
			if !gz {
				// The second round needs a new victim: the first is dead.
				victim = startAgentProcess(t, "victim", []string{p.agentAddr}, []pathConfig{{name: "big", path: "big", url: target.URL + "/big"}}, "--max_content_length_mbytes", "64")
				p.waitAgent(t, "victim", 1, 30*time.Second)
				blockOnce, blocked, release = sync.Once{}, make(chan struct{}), make(chan struct{})
			}
			req, _ := http.NewRequest(http.MethodGet, p.url("big"), nil)
			for k, v := range withGzip(promText, gz) {
				req.Header.Set(k, v)
			}
			resp, err := newHTTPClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d before the kill", resp.StatusCode)
			}
			type readResult struct {
				n   int64
				err error
				at  time.Time
			}
			rc := make(chan readResult, 1)
			go func() {
				n, err := io.Copy(io.Discard, resp.Body)
				rc <- readResult{n, err, time.Now()}
			}()
			select {
			case <-blocked:
			case <-time.After(30 * time.Second):
				t.Fatal("the target never sent its first part")
			}
			killed := time.Now()
			victim.kill(t)
			var r readResult
			select {
			case r = <-rc:
			case <-time.After(10 * time.Second):
				t.Fatal("the transfer did not end within 10s of the agent's death")
			}
			if r.err == nil {
				t.Fatalf("the transfer ended cleanly after %d bytes (Content-Length %d): a truncated body looked complete", r.n, resp.ContentLength)
			}
			if resp.ContentLength >= 0 && r.n >= resp.ContentLength {
				t.Fatalf("got all %d declared bytes from a body cut short", r.n)
			}
			broke := r.at.Sub(killed)
			t.Logf("transfer broke %v after SIGKILL, after %d bytes: %v", broke.Round(time.Millisecond), r.n, r.err)
			if broke > 2*time.Second {
				t.Errorf("the transfer broke %v after the agent died, want at once", broke)
			}
			p.agentGone(t, "victim", 5*time.Second)
			other := mustGet(t, newHTTPClient(t), p.url("other"), promText)
			if other.status != http.StatusOK || !bytes.Equal(other.body, body[:10000]) {
				t.Fatalf("the other agent after the kill: %d %.100q", other.status, other.body)
			}
		})
	}
}

// TestFaultAgentFrozen stops an agent with SIGSTOP: its TCP connection stays
// open but nothing answers. Its scrapes must fail by their deadline, the
// proxy must evict it within the keepalive interval and timeout plus 2 s (an
// HTTP/2 PING after the interval of silence, unanswered within its
// timeout), and after SIGCONT it must reconnect and serve again.
func TestFaultAgentFrozen(t *testing.T) {
	t.Parallel()
	body := exposition(2000)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	p := startProxyProcess(t)
	frozen := startAgentProcess(t, "frozen", []string{p.agentAddr}, []pathConfig{{name: "f", path: "frozen", url: target.URL}})
	startAgentProcess(t, "bystander", []string{p.agentAddr}, []pathConfig{{name: "o", path: "other", url: target.URL}})
	before := p.waitAgent(t, "frozen", 1, 30*time.Second)
	p.waitAgent(t, "bystander", 1, 30*time.Second)
	c := newHTTPClient(t)
	stop := keepScraping(t, c, p.url("other"), body, 200*time.Millisecond)

	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	t.Cleanup(func() { _ = frozen.cmd.Process.Signal(syscall.SIGCONT) })

	const deadline = 3 * time.Second
	r := getTimed(c, p.url("frozen"), promTimeout(deadline, true))
	if r.err != nil || r.status != http.StatusServiceUnavailable || r.elapsed > deadline+500*time.Millisecond {
		t.Errorf("scrape of the frozen agent: %v; want 503 within %v", r, deadline)
	}
	evictBy := transport.DefaultKeepalive.Interval + transport.DefaultKeepalive.Timeout + 2*time.Second
	evicted := p.agentGone(t, "frozen", evictBy+5*time.Second)
	detect := evicted.Sub(stopped)
	t.Logf("frozen agent evicted %v after SIGSTOP", detect.Round(time.Millisecond))
	if detect > evictBy {
		t.Errorf("frozen agent evicted after %v, want at most %v", detect, evictBy)
	}
	r = getTimed(c, p.url("frozen"), promTimeout(deadline, true))
	if r.err != nil || r.status == http.StatusOK || r.elapsed > time.Second {
		t.Errorf("scrape after eviction: %v; want a fast failure", r)
	}

	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	after := p.waitAgent(t, "frozen", 1, 30*time.Second)
	back := time.Since(resumed)
	t.Logf("agent registered again %v after SIGCONT", back.Round(time.Millisecond))
	if after.GetAgentId() == before.GetAgentId() {
		t.Errorf("agent id %s unchanged: the old session was never replaced", after.GetAgentId())
	}
	if back > 10*time.Second {
		t.Errorf("agent took %v to come back after SIGCONT, want at most 10s", back)
	}
	if r := mustGet(t, c, p.url("frozen"), promText); r.status != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Errorf("scrape after SIGCONT: %d %.100q", r.status, r.body)
	}
	if ok, bad := stop(); len(bad) > 0 || ok == 0 {
		t.Errorf("the other agent while one was frozen: %d good scrapes, %d bad: %q", ok, len(bad), bad)
	}
}

// TestFaultProxyKilled kills the proxy and starts it again on the same
// ports: every agent must register again within its reconnect backoff, and
// every path must scrape again.
func TestFaultProxyKilled(t *testing.T) {
	t.Parallel()
	body := exposition(5000)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	ports := []string{"--port", strconv.Itoa(freePort(t)), "--agent_port", strconv.Itoa(freePort(t))}
	p := startProxyProcess(t, ports...)
	names := []string{"a1", "a2", "a3"}
	for _, n := range names {
		startAgentProcess(t, n, []string{p.agentAddr}, []pathConfig{{name: n, path: "p_" + n, url: target.URL}})
	}
	for _, n := range names {
		p.waitAgent(t, n, 1, 30*time.Second)
	}
	p.kill(t)
	// Long enough for the agents' backoff to grow past its first steps.
	down := time.NewTimer(2 * time.Second)
	c := newHTTPClient(t)
	for _, n := range names {
		if _, err := get(c, p.url("p_"+n), promText); err == nil {
			t.Fatalf("a scrape succeeded with the proxy dead")
		}
	}
	<-down.C
	p2 := startProxyProcess(t, ports...)
	restarted := time.Now()
	for _, n := range names {
		p2.waitAgent(t, n, 1, 30*time.Second)
	}
	back := time.Since(restarted)
	t.Logf("all agents registered %v after the proxy came back", back.Round(time.Millisecond))
	// The agents' backoff starts at 0.5 s and doubles, with ±50% jitter:
	// after 2 s down the next attempt is at most about 3 s away.
	if back > 8*time.Second {
		t.Errorf("agents took %v to register again, want within their backoff", back)
	}
	for _, n := range names {
		r, err := get(c, p2.url("p_"+n), promText)
		if err != nil || r.status != http.StatusOK || !bytes.Equal(r.body, body) {
			t.Errorf("scrape of p_%s after the restart: %d %v", n, r.status, errors.Join(err))
		}
	}
}
