package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/server"
)

func TestWebConfigOnHTTPListeners(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	// Relative file names resolve against the web config's directory.
	webConfig := filepath.Join(s.Dir, "web.yml")
	if err := os.WriteFile(webConfig, []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"basic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _, _ := secureProxy(t, func(o *server.Options) {
		o.WebConfigFile = webConfig
		o.AdminEnabled, o.AdminListenAddr = true, "127.0.0.1:0"
		o.MetricsEnabled, o.MetricsListenAddr = true, "127.0.0.1:0"
	})
	fa, err := openSession(t, p, dialOpts{}, "a")
	if err != nil {
		t.Fatal(err)
	}
	if r := fa.registerPath("app"); !r.GetAccepted() {
		t.Fatal(r.GetReason())
	}

	roots := x509.NewCertPool()
	roots.AddCert(s.CA.Cert)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(hc.CloseIdleConnections)
	get := func(url, user, pw string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name     string
		url      string
		user, pw string
		status   int
	}{
		{name: "admin without credentials", url: "https://" + p.AdminAddr().String() + "/ping", status: 401},
		{name: "admin with credentials", url: "https://" + p.AdminAddr().String() + "/ping", user: "prometheus", pw: "scrape-pw", status: 200},
		{name: "metrics wrong password", url: "https://" + p.MetricsAddr().String() + "/metrics", user: "prometheus", pw: "nope", status: 401},
		{name: "metrics with credentials", url: "https://" + p.MetricsAddr().String() + "/metrics", user: "prometheus", pw: "scrape-pw", status: 200},
		{name: "scrape without credentials", url: "https://" + p.Addr().String() + "/app", status: 401},
		{name: "scrape unknown path with credentials", url: "https://" + p.Addr().String() + "/nope", user: "prometheus", pw: "scrape-pw", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := get(tt.url, tt.user, tt.pw); status != tt.status {
				t.Fatalf("status %d (%s), want %d", status, body, tt.status)
			}
		})
	}

	// An authorized scrape reaches the agent, without the proxy's own
	// credential.
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := fa.nextScrape()
		if req.GetAuthorization() != "" {
			t.Errorf("the proxy's basic-auth credential was forwarded to the agent: %q", req.GetAuthorization())
		}
		answer(fa, req, "up 1\n")
	}()
	if status, body := get("https://"+p.Addr().String()+"/app", "prometheus", "scrape-pw"); status != 200 || body != "up 1\n" {
		t.Fatalf("authorized scrape: %d %q", status, body)
	}
	<-done

	// Plain HTTP on the scrape port is refused.
	resp, err := http.Get("http://" + p.Addr().String() + "/app")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS scrape port: %d", resp.StatusCode)
		}
	}
}

// Basic auth turned on by an edit of the web config file while the proxy
// runs must take Prometheus' credential out of what reaches the agent, as
// basic auth configured at startup does; before the edit, the
// Authorization header is the target's and travels on.
func TestWebConfigBasicAuthAddedLaterStopsForwarding(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("scrape-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(t.TempDir(), "web.yml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(webConfig+".tmp", []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(webConfig+".tmp", webConfig); err != nil {
			t.Fatal(err)
		}
	}
	write("http_server_config:\n  headers:\n    X-Frame-Options: deny\n")
	p := runProxy(t, func(o *server.Options) { o.WebConfigFile = webConfig })
	fa := register(t, p, "a", false, "app")
	scrape := func(user, pw string) (status int, forwarded string) {
		t.Helper()
		got := make(chan string, 1)
		go func() {
			req := fa.nextScrape()
			got <- req.GetAuthorization()
			answer(fa, req, "up 1\n")
		}()
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.Addr().String()+"/app", nil)
		req.SetBasicAuth(user, pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, <-got
	}
	if status, fwd := scrape("target-user", "target-pw"); status != 200 || fwd == "" {
		t.Fatalf("without basic auth on the proxy: status %d, forwarded %q; want 200 and the target's credential", status, fwd)
	}

	write("basic_auth_users:\n  prometheus: " + string(hash) + "\n")
	// The proxy looks at the file about once a second.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + p.Addr().String() + "/nope")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("basic auth not in force 10 s after the edit (status %d)", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status, fwd := scrape("prometheus", "scrape-pw"); status != 200 || fwd != "" {
		t.Fatalf("under basic auth added by the edit: status %d, forwarded %q; want 200 and nothing", status, fwd)
	}
}
