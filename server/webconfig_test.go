package server_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

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
