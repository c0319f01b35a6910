package adminhttp

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

func serve(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestAdminRoutes(t *testing.T) {
	t.Parallel()
	healthy := true
	h := AdminHandler(AdminOptions{Health: func() Health {
		if healthy {
			return Health{Healthy: true, Checks: map[string]string{"x": "ok"}}
		}
		return Health{Checks: map[string]string{"x": "broken"}}
	}})
	tests := []struct {
		name, path string
		wantCode   int
		wantBody   string
	}{
		{"ping", "/ping", 200, "pong"},
		{"version", "/version", 200, `"go_version"`},
		{"health", "/healthcheck", 200, `"healthy": true`},
		{"no threaddump without debug", "/threaddump", 404, ""},
		{"no pprof without debug", "/debug/pprof/", 404, ""},
	}
	for _, tt := range tests {
		code, body := serve(t, h, tt.path)
		if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %d %q, want %d containing %q", tt.name, code, body, tt.wantCode, tt.wantBody)
		}
	}
	healthy = false
	code, body := serve(t, h, "/healthcheck")
	var doc Health
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != 503 || doc.Healthy || doc.Checks["x"] != "broken" {
		t.Errorf("unhealthy: %d %q (%v)", code, body, err)
	}
}

func TestDebugRoutes(t *testing.T) {
	t.Parallel()
	h := AdminHandler(AdminOptions{Debug: true, Health: func() Health { return Health{Healthy: true} }})
	for _, p := range []string{"/threaddump", "/debug/pprof/", "/debug/pprof/cmdline"} {
		if code, _ := serve(t, h, p); code != 200 {
			t.Errorf("%s = %d, want 200", p, code)
		}
	}
}

func TestMetricsPath(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_gauge", Help: "h"}))
	h := MetricsHandler(reg, "custom")
	if code, body := serve(t, h, "/custom"); code != 200 || !strings.Contains(body, "test_gauge") {
		t.Errorf("/custom = %d %q", code, body)
	}
	if code, _ := serve(t, h, "/metrics"); code != 404 {
		t.Errorf("/metrics = %d, want 404 when the path is custom", code)
	}
}

func TestListenerLifecycle(t *testing.T) {
	t.Parallel()
	s, err := Listen("admin", "127.0.0.1:0", http.NotFoundHandler())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("admin", s.Addr().String(), http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "listen on admin address") {
		t.Errorf("second bind: %v, want an error naming the listener", err)
	}
	// Never served: Shutdown must still release the port.
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	_ = ln.Close()
}

func TestWebConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "web.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("basic_auth_users:\n  ops: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: nope.crt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Listen("metrics", "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UseWebConfig(bad, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), `metrics listener: web config file "`+bad+`"`) {
		t.Errorf("broken web config: %v", err)
	}
	if err := s.UseWebConfig(good, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	get := func(user, pw string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.Addr().String()+"/", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("", ""); code != http.StatusUnauthorized {
		t.Errorf("without credentials: %d, want 401", code)
	}
	if code := get("ops", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}
	if code := get("ops", "pw"); code != http.StatusOK {
		t.Errorf("with credentials: %d, want 200", code)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
}
