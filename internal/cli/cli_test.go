package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer collects a program's stderr while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a program started in process.
type running struct {
	addrs  map[string]net.Addr
	stderr *syncBuffer
	stop   context.CancelFunc // what SIGTERM does in the binaries
	done   chan error
}

type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer, env Env, h hooks) error

// start runs a program on loopback ephemeral ports until the test ends.
func start(t *testing.T, run runFunc, args []string, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stderr: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	ready := make(chan map[string]net.Addr, 1)
	h := hooks{
		listen: func(string, string) string { return "127.0.0.1:0" },
		ready:  func(a map[string]net.Addr) { ready <- a },
	}
	go func() { r.done <- run(ctx, args, io.Discard, r.stderr, envOf(env), h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Errorf("program did not stop within 30s")
		}
	})
	select {
	case r.addrs = <-ready:
	case err := <-r.done:
		t.Fatalf("program ended before it was ready: %v\n%s", err, r.stderr)
	case <-time.After(10 * time.Second):
		t.Fatalf("program not ready within 10s\n%s", r.stderr)
	}
	return r
}

// wait returns the program's result once it has stopped.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("program did not stop within 30s")
		return nil
	}
}

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// get fetches a URL and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func url(a net.Addr, path string) string { return "http://" + a.String() + path }

type health struct {
	Healthy bool              `json:"healthy"`
	Checks  map[string]string `json:"checks"`
}

func healthOf(t *testing.T, a net.Addr) (int, health) {
	t.Helper()
	code, body := get(t, url(a, "/healthcheck"))
	var h health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/healthcheck body %q: %v", body, err)
	}
	return code, h
}

func TestUsageAndVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(context.Context, []string, io.Writer, io.Writer, Env) error
		args []string
		want []string
	}{
		{"proxy usage", RunProxy, []string{"--usage"}, []string{"Proxy options:", "Proxy gRPC options:", "-p, --port INT", "PROXY_PORT", "8080", "-D<key>=<value>"}},
		{"proxy -h", RunProxy, []string{"-h"}, []string{"Usage: prometheus-proxy"}},
		{"proxy version", RunProxy, []string{"--version"}, []string{"prometheus-proxy ", "commit "}},
		{"agent usage", RunAgent, []string{"-u"}, []string{"Agent options:", "Agent HTTP client cache options:", "Agent gRPC options:", "PROXY_HOSTNAME", "AGENT_CONFIG"}},
		{"agent version", RunAgent, []string{"-v"}, []string{"prometheus-agent "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := tt.run(t.Context(), tt.args, &out, io.Discard, envOf(nil)); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestStartupFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(context.Context, []string, io.Writer, io.Writer, Env) error
		args []string
		env  map[string]string
		want string
	}{
		{"proxy log level all", RunProxy, []string{"--log_level", "all"}, nil,
			`invalid configuration: proxy.logLevel = "all": "all" is not supported: use "trace" for the most detail (flag --log_level)`},
		{"agent log level all from env", RunAgent, nil, map[string]string{"AGENT_LOG_LEVEL": "all"},
			`invalid configuration: agent.logLevel = "all": "all" is not supported: use "trace" for the most detail (env AGENT_LOG_LEVEL)`},
		{"proxy token with white space", RunProxy, []string{"--agent_token", "s3cret "}, nil,
			"invalid configuration: proxy.agentToken = <redacted>: a token must not start or end with white space (flag --agent_token)"},
		{"agent token not printable", RunAgent, nil, map[string]string{"AGENT_TOKEN": "s3cret\x7f"},
			"invalid configuration: agent.agentToken = <redacted>: a token must be printable ASCII, to travel in an HTTP header (env AGENT_TOKEN)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.run(t.Context(), tt.args, io.Discard, io.Discard, envOf(tt.env))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v\nwant %s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the token leaked into the error: %v", err)
			}
		})
	}
}

func TestProxyAdminRoutesOnlyOnTheAdminPort(t *testing.T) {
	t.Parallel()
	p := start(t, runProxy, []string{"--admin", "--metrics", "-Dproxy.metrics.standardExportsEnabled=true"}, nil)
	if code, body := get(t, url(p.addrs["admin"], "/ping")); code != 200 || body != "pong" {
		t.Errorf("/ping = %d %q, want 200 pong", code, body)
	}
	if code, h := healthOf(t, p.addrs["admin"]); code != 200 || !h.Healthy || h.Checks["listeners"] != "ok" {
		t.Errorf("/healthcheck = %d %+v, want 200 healthy", code, h)
	}
	if code, body := get(t, url(p.addrs["admin"], "/version")); code != 200 || !strings.Contains(body, `"version"`) || !strings.Contains(body, `"commit"`) {
		t.Errorf("/version = %d %q", code, body)
	}
	if code, _ := get(t, url(p.addrs["admin"], "/threaddump")); code != 404 {
		t.Errorf("/threaddump without --debug = %d, want 404", code)
	}
	if code, body := get(t, url(p.addrs["metrics"], "/metrics")); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, want 200 with the standard exports", code)
	}
	for _, route := range []string{"/ping", "/healthcheck", "/version", "/metrics", "/threaddump"} {
		if code, body := get(t, url(p.addrs["scrape"], route)); code == 200 || body == "pong" {
			t.Errorf("scrape port answered %s: %d %q", route, code, body)
		}
		// The agent port speaks only HTTP/2 to agents: a plain request must
		// not reach an admin route either.
		if resp, err := http.Get(url(p.addrs["agent"], route)); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Errorf("agent port answered %s with 200", route)
			}
		}
	}
}

func TestDebugRoutes(t *testing.T) {
	t.Parallel()
	p := start(t, runProxy, []string{"-r", "-b"}, nil)
	if code, body := get(t, url(p.addrs["admin"], "/threaddump")); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/threaddump = %d", code)
	}
	if code, _ := get(t, url(p.addrs["admin"], "/debug/pprof/")); code != 200 {
		t.Errorf("/debug/pprof/ = %d", code)
	}
}

func TestJSONLogsAndInertKeyWarnings(t *testing.T) {
	t.Parallel()
	p := start(t, runProxy, []string{"--log_format", "json", "-Dproxy.reflectionDisabled=true"}, nil)
	p.stop()
	if err := p.wait(t); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	var sawWarning, sawStart bool
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("not a JSON log line: %q", l)
		}
		sawWarning = sawWarning || (rec["level"] == "WARN" && rec["key"] == "proxy.reflectionDisabled")
		sawStart = sawStart || rec["msg"] == "prometheus-proxy starting"
	}
	if !sawWarning || !sawStart {
		t.Errorf("warning %v, start %v in:\n%s", sawWarning, sawStart, p.stderr)
	}
}

func TestTraceLevelIsNamed(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	log := newLogger(&b, "trace", "text")
	log.Log(t.Context(), LevelTrace, "very detailed")
	if !strings.Contains(b.String(), "TRC very detailed") {
		t.Errorf("trace line = %q", b.String())
	}
	b.Reset()
	newLogger(&b, "off", "text").Error("hidden")
	if b.Len() != 0 {
		t.Errorf("level off logged %q", b.String())
	}
}
