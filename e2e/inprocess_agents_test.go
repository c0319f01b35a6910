package e2e

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/server"
)

// recordingLogger logs to t.Log and keeps the text, so a test can wait for
// what an agent was told.
func recordingLogger(t testing.TB) (*slog.Logger, *output) {
	var out output
	h := slog.NewTextHandler(io.MultiWriter(testlog.Writer(t), &out), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), &out
}

// waitLogged waits until the log holds all of parts on one line.
func waitLogged(t testing.TB, log *output, timeout time.Duration, parts ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a log line with %q", parts), timeout, func() bool {
		for line := range strings.Lines(log.String()) {
			if containsAll(line, parts) {
				return true
			}
		}
		return false
	})
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// staticTarget serves body with contentType.
func staticTarget(t testing.TB, contentType, body string) string {
	t.Helper()
	return newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, body)
	}).URL
}

// named sets an agent's name and, optionally, its consolidated flag.
func named(name string, consolidated bool) func(*client.Options) {
	return func(o *client.Options) { o.AgentName, o.Consolidated = name, consolidated }
}

// counter reads a counter of the proxy's registry.
func counter(t testing.TB, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("the proxy has no metric %s", name)
	return 0
}

func TestInProcessConsolidatedMerge(t *testing.T) {
	t.Parallel()
	const openMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	cases := []struct {
		name        string
		contentType string
		a, b        string
		// want lists the acceptable answers: the agents may be asked in
		// either order.
		want []string
	}{
		{name: "text", contentType: "text/plain; version=0.0.4", a: "a_metric 1\n", b: "b_metric 2\n",
			want: []string{"a_metric 1\nb_metric 2\n", "b_metric 2\na_metric 1\n"}},
		{name: "openmetrics keeps one EOF", contentType: openMetrics, a: "# TYPE a gauge\na 1\n# EOF\n", b: "# TYPE b gauge\nb 2\n# EOF\n",
			want: []string{"# TYPE a gauge\na 1\n# TYPE b gauge\nb 2\n# EOF\n", "# TYPE b gauge\nb 2\n# TYPE a gauge\na 1\n# EOF\n"}},
		{name: "no final newline", contentType: "text/plain", a: "a 1", b: "b 2",
			want: []string{"a 1\nb 2", "b 2\na 1"}},
	}
	p := startProxy(t, func(o *server.Options) { o.ConsolidatedMode = server.ConsolidatedMerge })
	var pathsA, pathsB []client.PathConfig
	for i, tc := range cases {
		path := fmt.Sprintf("merged_%d", i)
		pathsA = append(pathsA, client.PathConfig{Path: path, URL: staticTarget(t, tc.contentType, tc.a)})
		pathsB = append(pathsB, client.PathConfig{Path: path, URL: staticTarget(t, tc.contentType, tc.b)})
	}
	// A path whose second agent's target fails: the merge must fail too,
	// never answer with half the series.
	pathsA = append(pathsA, client.PathConfig{Path: "merged_failing", URL: staticTarget(t, "text/plain", "a 1\n")})
	failing := newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "collector broke", http.StatusInternalServerError)
	})
	pathsB = append(pathsB, client.PathConfig{Path: "merged_failing", URL: failing.URL})

	a := startAgent(t, p, pathsA, named("agent-a", true))
	b := startAgent(t, p, pathsB, named("agent-b", true))
	waitFor(t, "both agents registered", 10*time.Second, func() bool {
		return a.RegisteredPaths() == len(pathsA) && b.RegisteredPaths() == len(pathsB)
	})
	c := newHTTPClient(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for range 4 {
				r := mustGet(t, c, proxyURL(p, pathsA[i].Path), withGzip(promText, true))
				if r.status != http.StatusOK || !containsString(tc.want, string(r.body)) {
					t.Fatalf("status %d, body %q; want 200 with one of %q", r.status, r.body, tc.want)
				}
				if ct := r.header.Get("Content-Type"); ct != tc.contentType {
					t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
				}
			}
		})
	}
	t.Run("one agent fails", func(t *testing.T) {
		r := mustGet(t, c, proxyURL(p, "merged_failing"), promText)
		if r.status == http.StatusOK || strings.Contains(string(r.body), "a 1") {
			t.Errorf("status %d, body %q; want a failure without the other agent's series", r.status, r.body)
		}
	})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestInProcessConsolidatedFailover(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(o *server.Options) { o.ConsolidatedMode = server.ConsolidatedFailover })
	a := startAgent(t, p, []client.PathConfig{{Path: "shared", URL: staticTarget(t, "text/plain", "copy 1\n")}}, named("agent-a", true))
	b := startAgent(t, p, []client.PathConfig{{Path: "shared", URL: staticTarget(t, "text/plain", "copy 2\n")}}, named("agent-b", true))
	waitFor(t, "both agents registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 && b.RegisteredPaths() == 1 })
	c := newHTTPClient(t)

	seen := map[string]int{}
	for range 6 {
		r := mustGet(t, c, proxyURL(p, "shared"), promText)
		if r.status != http.StatusOK || (string(r.body) != "copy 1\n" && string(r.body) != "copy 2\n") {
			t.Fatalf("status %d, body %q; want one agent's body, not both", r.status, r.body)
		}
		seen[string(r.body)]++
	}
	if len(seen) != 2 {
		t.Errorf("answers %v: failover mode should spread scrapes over both agents", seen)
	}

	// With one copy gone, every scrape is answered by the other, including
	// those that try the gone agent first.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		r := mustGet(t, c, proxyURL(p, "shared"), promText)
		if r.status != http.StatusOK || string(r.body) != "copy 2\n" {
			t.Fatalf("after agent-a stopped: status %d, body %q; want agent-b's body", r.status, r.body)
		}
	}
}

func TestInProcessMixedConsolidation(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                string
		first, second       bool // consolidated flags, in registration order
		wantReasonFragments []string
	}{
		{name: "non-consolidated joins consolidated", first: true, second: false, wantReasonFragments: []string{"consolidated", "cannot join"}},
		{name: "consolidated joins non-consolidated", first: false, second: true, wantReasonFragments: []string{"non-consolidated", "cannot join"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startProxy(t, nil)
			first := startAgent(t, p, []client.PathConfig{{Path: "shared", URL: staticTarget(t, "text/plain", "first 1\n")}}, named("first", tc.first))
			waitFor(t, "first agent registered", 10*time.Second, func() bool { return first.RegisteredPaths() == 1 })
			log, out := recordingLogger(t)
			second := startAgent(t, p, []client.PathConfig{
				{Path: "shared", URL: staticTarget(t, "text/plain", "second 1\n")},
				{Path: "own", URL: staticTarget(t, "text/plain", "own 1\n")},
			}, func(o *client.Options) {
				named("second", tc.second)(o)
				o.Logger = log
			})
			// The refusal comes with its reason, and only that path is
			// refused: the agent keeps its session and its other path.
			waitLogged(t, out, 10*time.Second, append([]string{"proxy refused path", "path=shared"}, tc.wantReasonFragments...)...)
			waitFor(t, "second agent's own path registered", 10*time.Second, func() bool { return second.RegisteredPaths() == 1 })
			c := newHTTPClient(t)
			if r := mustGet(t, c, proxyURL(p, "shared"), nil); string(r.body) != "first 1\n" {
				t.Errorf("shared: status %d, body %q; want the first agent's body", r.status, r.body)
			}
			if r := mustGet(t, c, proxyURL(p, "own"), nil); string(r.body) != "own 1\n" {
				t.Errorf("own: status %d, body %q; want the second agent's body", r.status, r.body)
			}
			if !first.Connected() || !second.Connected() || first.RegisteredPaths() != 1 {
				t.Errorf("after the refusal: connected %v/%v, first agent serves %d paths", first.Connected(), second.Connected(), first.RegisteredPaths())
			}
		})
	}
}

// noLoopWindow is how long the test watches for the displaced agent taking
// its path back. Were it going to, it would do so on receiving the
// displacement, within a round trip.
const noLoopWindow = 500 * time.Millisecond

func TestInProcessDisplacement(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	p := startProxy(t, func(o *server.Options) { o.Registerer = reg })
	oldLog, oldOut := recordingLogger(t)
	old := startAgent(t, p, []client.PathConfig{{Path: "app", URL: staticTarget(t, "text/plain", "old 1\n")}}, func(o *client.Options) {
		named("old", false)(o)
		o.Logger = oldLog
	})
	waitFor(t, "old agent registered", 10*time.Second, func() bool { return old.RegisteredPaths() == 1 })
	c := newHTTPClient(t)
	if r := mustGet(t, c, proxyURL(p, "app"), nil); string(r.body) != "old 1\n" {
		t.Fatalf("before the displacement: body %q", r.body)
	}

	// The newest registration wins, and the old owner is told.
	newer := startAgent(t, p, []client.PathConfig{{Path: "app", URL: staticTarget(t, "text/plain", "new 1\n")}}, named("new", false))
	waitFor(t, "new agent registered", 10*time.Second, func() bool { return newer.RegisteredPaths() == 1 })
	waitLogged(t, oldOut, 10*time.Second, "path taken over by another agent", "path=app", "new_agent_name=new")
	if r := mustGet(t, c, proxyURL(p, "app"), nil); string(r.body) != "new 1\n" {
		t.Fatalf("after the displacement: body %q; want the new agent's", r.body)
	}
	if n := counter(t, reg, "proxy_agent_displacement_total"); n != 1 {
		t.Errorf("proxy_agent_displacement_total = %v, want 1", n)
	}

	// No loop: the old agent, still connected, does not take the path back.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(noLoopWindow)
	for time.Now().Before(deadline) {
		<-tick.C
		if r := mustGet(t, c, proxyURL(p, "app"), nil); string(r.body) != "new 1\n" {
			t.Fatalf("%v after the displacement: body %q; the path changed hands again", noLoopWindow-time.Until(deadline), r.body)
		}
	}
	if n := counter(t, reg, "proxy_agent_displacement_total"); n != 1 {
		t.Errorf("proxy_agent_displacement_total = %v after %v, want still 1", n, noLoopWindow)
	}
	if !old.Connected() || old.RegisteredPaths() != 0 {
		t.Errorf("old agent: connected %v with %d paths; want connected with none", old.Connected(), old.RegisteredPaths())
	}
}
