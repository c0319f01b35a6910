package cli

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/promproxy/promproxy/internal/testcerts"
)

// secureFiles writes a certificate set and, next to it, a web config file
// (HTTPS with the proxy's certificate, basic auth for "ops") and one config
// file for both programs that names all of them by relative paths. It
// returns the set and the config file.
func secureFiles(t *testing.T, target string) (*testcerts.Set, string) {
	t.Helper()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("ops-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, body string) string {
		p := filepath.Join(s.Dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("web.yml", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  ops: "+string(hash)+"\n")
	// The identity needs both the token (from the agent's environment) and
	// the client certificate the test CA issued to "agent" of "team-a".
	cfg := write("secure.yaml", `
proxy:
  webConfigFile: web.yml
  tls:
    certChainFilePath: server.crt
    privateKeyFilePath: server.key
    trustCertCollectionFilePath: ca.crt
  auth:
    - name: team-a
      token: team-a-token
      certSubject: "CN=agent,O=team-a"
      paths: ["app", "team_a_*"]
agent:
  name: secure-agent
  webConfigFile: web.yml
  tls:
    certChainFilePath: client.crt
    privateKeyFilePath: client.key
    trustCertCollectionFilePath: ca.crt
  pathConfigs:
    - name: app
      path: app
      url: `+target+`/metrics
`)
	return s, cfg
}

// TestMutualTLSIdentityFromOneConfigFile runs both programs from one shared
// config file: mutual TLS on the agent channel, an identity bound to a
// token and a certificate, and basic auth on the proxy's scrape listener
// and the agent's admin listener, both served over HTTPS.
func TestMutualTLSIdentityFromOneConfigFile(t *testing.T) {
	t.Parallel()
	target := newBlockingTarget(t, false)
	s, cfg := secureFiles(t, target.srv.URL)
	c := tlsClient(t, s)
	p := start(t, runProxy, []string{"-c", cfg}, nil)
	a := start(t, runAgent, []string{"-c", cfg, "--admin"}, map[string]string{
		"PROXY_HOSTNAME": p.addrs["agent"].String(),
		"AGENT_TOKEN":    "team-a-token",
	})

	scrape := func(user, pw string) (int, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+p.addrs["scrape"].String()+"/app", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("scrape: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "the path to be served over mutual TLS", func() bool { code, _ := scrape("ops", "ops-pw"); return code == 200 })
	if code, body := scrape("ops", "ops-pw"); body != "# TYPE up gauge\nup 1\n" {
		t.Errorf("scrape = %d %q", code, body)
	}
	if code, _ := scrape("", ""); code != http.StatusUnauthorized {
		t.Errorf("scrape without credentials = %d, want 401", code)
	}

	ping := func(user, pw string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+a.addrs["admin"].String()+"/ping", nil)
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("agent /ping: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := ping("", ""); code != http.StatusUnauthorized {
		t.Errorf("agent /ping without credentials = %d, want 401", code)
	}
	if code := ping("ops", "ops-pw"); code != http.StatusOK {
		t.Errorf("agent /ping with credentials = %d, want 200", code)
	}
	if logs := p.stderr.String(); !strings.Contains(logs, "agent identities enabled") || strings.Contains(logs, "team-a-token") {
		t.Errorf("proxy log lacks the identities line or shows the token:\n%s", logs)
	}
}

// TestIdentityCertificateBindingReachesTheProxy: the agent holds the
// identity's token, but its certificate is not the one the identity is
// bound to, so the proxy refuses it and nothing is registered.
func TestIdentityCertificateBindingReachesTheProxy(t *testing.T) {
	t.Parallel()
	target := newBlockingTarget(t, false)
	s, cfg := secureFiles(t, target.srv.URL)
	other := filepath.Join(s.Dir, "other.yaml")
	body := strings.Replace(readFile(t, cfg), `certSubject: "CN=agent,O=team-a"`, `certSubject: "CN=someone-else"`, 1)
	if err := os.WriteFile(other, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, runProxy, []string{"-c", other}, nil)
	a := start(t, runAgent, []string{"-c", other, "--proxy", p.addrs["agent"].String(), "--agent_token", "team-a-token"}, nil)
	waitFor(t, "the agent to report the refusal", func() bool {
		return strings.Contains(a.stderr.String(), "the proxy refused this agent's identity")
	})
	waitFor(t, "the proxy to log the refusal", func() bool { return strings.Contains(p.stderr.String(), "certificate_mismatch") })
	c := tlsClient(t, s)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+p.addrs["scrape"].String()+"/app", nil)
	req.SetBasicAuth("ops", "ops-pw")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("scrape of the refused agent's path = %d, want 404", resp.StatusCode)
	}
}

func TestSecurityStartupFailures(t *testing.T) {
	t.Parallel()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(s.Dir, "missing.pem")
	loopback := hooks{listen: func(string, string) string { return "127.0.0.1:0" }}
	tests := []struct {
		name  string
		agent bool
		args  []string
		want  string
	}{
		{name: "proxy certificate missing", args: []string{"--cert", missing, "--key", s.ServerKey},
			want: `certificate file "` + missing + `" does not exist`},
		{name: "proxy key of another certificate", args: []string{"--cert", s.ServerCert, "--key", s.ClientKey},
			want: `key file "` + s.ClientKey + `" does not belong to certificate file "` + s.ServerCert + `"`},
		{name: "proxy expired certificate", args: []string{"--cert", s.ExpiredServerCert, "--key", s.ExpiredServerKey},
			want: `certificate file "` + s.ExpiredServerCert + `" (`},
		{name: "proxy web config missing", args: []string{"--web.config.file", missing},
			want: `WebConfigFile = "` + missing + `"`},
		{name: "agent trust file missing", agent: true, args: []string{"--trust", missing},
			want: `trust file "` + missing + `" does not exist`},
		{name: "agent target trust store missing", agent: true, args: []string{"--https_truststore", missing},
			want: missing},
		{name: "agent web config missing", agent: true, args: []string{"--admin", "--web.config.file", missing},
			want: `admin listener: web config file "` + missing + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			run := runProxy
			if tt.agent {
				run = runAgent
			}
			err := run(t.Context(), tt.args, io.Discard, io.Discard, envOf(nil), loopback)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v\nwant it to contain %s", err, tt.want)
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRedactedLogs(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			log := newLogger(&b, "info", format)
			log.Info("fetch http://user:pw-in-msg@target:9100/metrics?key=q-in-msg failed",
				"token", "tok-attr", "target", "https://t:9100/m?apikey=q-in-attr", "err", &os.PathError{Op: "get", Path: "http://u:pw-in-err@x/", Err: os.ErrNotExist})
			out := b.String()
			for _, secret := range []string{"pw-in-msg", "q-in-msg", "tok-attr", "q-in-attr", "pw-in-err"} {
				if strings.Contains(out, secret) {
					t.Errorf("%q leaked: %s", secret, out)
				}
			}
			if !strings.Contains(out, "target:9100/metrics") || !strings.Contains(out, "REDACTED") {
				t.Errorf("redaction removed too much or nothing: %s", out)
			}
			if format == "json" {
				var rec map[string]any
				if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
					t.Errorf("not JSON after redaction: %v", err)
				}
			}
		})
	}
}

// tlsClient trusts the test CA.
func tlsClient(t *testing.T, s *testcerts.Set) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(s.CA.Cert)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}
