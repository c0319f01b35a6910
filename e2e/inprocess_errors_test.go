package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
)

func TestInProcessBadPaths(t *testing.T) {
	t.Parallel()
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("up 1\n")) })
	p := startProxy(t, nil)
	a := startAgent(t, p, []client.PathConfig{{Path: "app", URL: target.URL}}, nil)
	waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
	c := newHTTPClient(t)
	cases := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantReason string
	}{
		{name: "unknown path", path: "/nope", wantStatus: http.StatusNotFound, wantReason: `no agent serves path "nope"`},
		{name: "multi-segment path", path: "/app/metrics", wantStatus: http.StatusNotFound, wantReason: "is not a scrape path"},
		{name: "deeper path", path: "/a/b/c", wantStatus: http.StatusNotFound, wantReason: "is not a scrape path"},
		{name: "no path", path: "/", wantStatus: http.StatusNotFound, wantReason: "no path given"},
		{name: "character outside a path segment", path: "/app%20x", wantStatus: http.StatusNotFound, wantReason: "contains"},
		{name: "POST", method: http.MethodPost, path: "/app", wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequestWithContext(t.Context(), method, "http://"+p.Addr().String()+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, body, err := doRequest(c, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d; body %q", resp.StatusCode, tc.wantStatus, body)
			}
			if !strings.Contains(string(body), tc.wantReason) {
				t.Errorf("body %q does not give the reason %q", body, tc.wantReason)
			}
		})
	}
	// The agent's real path still works next to all of that.
	if r := mustGet(t, c, proxyURL(p, "app"), nil); r.status != http.StatusOK || string(r.body) != "up 1\n" {
		t.Errorf("app: status %d, body %q", r.status, r.body)
	}
}

func doRequest(c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(resp.Body)
	return resp, b.Bytes(), err
}

func TestInProcessAgentGone(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		stop func(context.Context, *client.Agent) error
	}{
		{name: "Close", stop: func(_ context.Context, a *client.Agent) error { return a.Close() }},
		{name: "Shutdown", stop: func(ctx context.Context, a *client.Agent) error { return a.Shutdown(ctx) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("up 1\n")) })
			p := startProxy(t, nil)
			a := startAgent(t, p, []client.PathConfig{{Path: "app", URL: target.URL}}, nil)
			waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
			c := newHTTPClient(t)
			if err := tc.stop(t.Context(), a); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			var r reply
			waitFor(t, "scrapes to fail after the agent stopped", time.Second, func() bool {
				r = mustGet(t, c, proxyURL(p, "app"), nil)
				return r.status != http.StatusOK
			})
			// Depending on how far the proxy got in noticing, the reason is
			// that the agent disconnected or that the path has no agent.
			if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "agent") {
				t.Errorf("after %s: status %d, body %q; want 503 with a reason", tc.name, r.status, r.body)
			}
		})
	}

	t.Run("scrape in flight", func(t *testing.T) {
		t.Parallel()
		held := newGate(t, []byte("up 1\n"))
		p := startProxy(t, nil)
		a := startAgent(t, p, []client.PathConfig{{Path: "held", URL: held.srv.URL}}, nil)
		waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
		c := newHTTPClient(t)
		pending := getAsync(c, proxyURL(p, "held"), promText)
		held.waitArrived(t, 10*time.Second)
		stopped := time.Now()
		_ = a.Close()
		r := await(t, pending, 10*time.Second)
		if r.err != nil || r.status != http.StatusServiceUnavailable {
			t.Fatalf("status %d, err %v, want 503", r.status, r.err)
		}
		if d := time.Since(stopped); d > time.Second {
			t.Errorf("503 came %v after the agent stopped, want within 1s", d)
		}
	})
}

func TestInProcessContentTooLarge(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	body := exposition(limit + 1)
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("length") != "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		_, _ = w.Write(body[:n])
	})
	p := startProxy(t, nil)
	paths := []client.PathConfig{
		{Path: "at_limit", URL: target.URL + "?length=1&n=" + strconv.Itoa(limit)},
		{Path: "declared_over", URL: target.URL + "?length=1&n=" + strconv.Itoa(limit+1)},
		{Path: "streamed_over", URL: target.URL + "?n=" + strconv.Itoa(limit+1)},
	}
	a := startAgent(t, p, paths, func(o *client.Options) { o.MaxContentLength = limit })
	waitFor(t, "paths registered", 10*time.Second, func() bool { return a.RegisteredPaths() == len(paths) })
	c := newHTTPClient(t)

	if r := mustGet(t, c, proxyURL(p, "at_limit"), withGzip(promText, true)); r.status != http.StatusOK || !bytes.Equal(r.body, body[:limit]) {
		t.Errorf("body of exactly the limit: status %d, %d bytes; want 200 with %d bytes", r.status, len(r.body), limit)
	}
	// A declared length over the limit is refused before any byte is read.
	r := mustGet(t, c, proxyURL(p, "declared_over"), withGzip(promText, true))
	if r.status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.body), "maxContentLengthMBytes") {
		t.Errorf("declared body over the limit: status %d, body %.200q; want 413 naming maxContentLengthMBytes", r.status, r.body)
	}
	// A streamed body is cut while it is read. Once the proxy has started
	// its answer it can only break it; either way Prometheus must never
	// get a complete 200.
	r, err := get(c, proxyURL(p, "streamed_over"), withGzip(promText, true))
	t.Logf("streamed body over the limit: status %d, %d bytes, transfer error %v", r.status, len(r.body), err)
	if err == nil && r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("streamed body over the limit: status %d with %d bytes and no transfer error; want 413 or a broken transfer", r.status, len(r.body))
	}
}

func TestInProcessForwardedHeaders(t *testing.T) {
	t.Parallel()
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"authorization": r.Header.Get("Authorization"),
			"accept":        r.Header.Get("Accept"),
			"query":         r.URL.RawQuery,
		})
	})
	p := startProxy(t, nil)
	a := startAgent(t, p, []client.PathConfig{{Path: "echo", URL: target.URL + "/metrics"}}, nil)
	waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
	c := newHTTPClient(t)
	cases := []struct {
		name string
		hdr  map[string]string
	}{
		{name: "bearer token and protobuf accept", hdr: map[string]string{"Authorization": "Bearer s3cr3t-t0ken", "Accept": promProtobuf["Accept"]}},
		{name: "basic auth and text accept", hdr: map[string]string{"Authorization": "Basic dXNlcjpwYXNz", "Accept": promText["Accept"]}},
		{name: "neither", hdr: map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := mustGet(t, c, proxyURL(p, "echo"), tc.hdr)
			var got map[string]string
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
			}
			if got["authorization"] != tc.hdr["Authorization"] {
				t.Errorf("target got Authorization %q, want %q", got["authorization"], tc.hdr["Authorization"])
			}
			if got["accept"] != tc.hdr["Accept"] {
				t.Errorf("target got Accept %q, want %q", got["accept"], tc.hdr["Accept"])
			}
		})
	}
}

func TestInProcessTargetStatusAndContentType(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		status      int
		contentType string // "" sends no Content-Type at all
		body        string
	}{
		{name: "openmetrics", status: 200, contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8", body: "# TYPE up gauge\nup 1\n# EOF\n"},
		{name: "server error", status: 500, contentType: "text/plain; charset=utf-8", body: "collector failed: disk unreadable\n"},
		{name: "not found", status: 404, contentType: "text/html; charset=utf-8", body: "<html><body>no metrics here</body></html>"},
		{name: "unavailable json", status: 503, contentType: "application/json", body: `{"error":"warming up"}`},
		{name: "unauthorized", status: 401, contentType: "text/plain", body: "Unauthorized\n"},
		{name: "no content type", status: 200, body: "up 1\n"},
	}
	mux := http.NewServeMux()
	var paths []client.PathConfig
	for i, tc := range cases {
		route := "/t" + strconv.Itoa(i)
		mux.HandleFunc(route, func(w http.ResponseWriter, _ *http.Request) {
			if tc.contentType == "" {
				w.Header()["Content-Type"] = nil // stops net/http sniffing one
			} else {
				w.Header().Set("Content-Type", tc.contentType)
			}
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		})
	}
	target := newTarget(t, mux.ServeHTTP)
	for i := range cases {
		paths = append(paths, client.PathConfig{Path: "status_" + strconv.Itoa(i), URL: target.URL + "/t" + strconv.Itoa(i)})
	}
	p := startProxy(t, nil)
	a := startAgent(t, p, paths, nil)
	waitFor(t, "paths registered", 10*time.Second, func() bool { return a.RegisteredPaths() == len(paths) })
	c := newHTTPClient(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, gz := range []bool{true, false} {
				hdr := withGzip(promText, gz)
				direct := mustGet(t, c, paths[i].URL, hdr)
				proxied := mustGet(t, c, proxyURL(p, paths[i].Path), hdr)
				sameAnswer(t, tc.name+" gzip="+strconv.FormatBool(gz), direct, proxied)
			}
		})
	}

	t.Run("unreachable target", func(t *testing.T) {
		t.Parallel()
		gone := newTarget(t, func(http.ResponseWriter, *http.Request) {})
		url := gone.URL
		gone.Close()
		a := startAgent(t, p, []client.PathConfig{{Path: "unreachable", URL: url}}, func(o *client.Options) { o.AgentName = "second-agent" })
		waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
		r := mustGet(t, c, proxyURL(p, "unreachable"), promText)
		if r.status != http.StatusBadGateway || !strings.Contains(string(r.body), "connection refused") {
			t.Errorf("status %d, body %q; want 502 saying why the target could not be fetched", r.status, r.body)
		}
	})
}
