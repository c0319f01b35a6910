package e2e

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/internal/tlsconfig"
	"github.com/promproxy/promproxy/server"
)

func metricsTarget(t *testing.T) *httptest.Server {
	return newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte("up 1\n"))
	})
}

func expectScrape(t *testing.T, p *server.Proxy, path string, status int) {
	t.Helper()
	resp, body, err := scrape(t, http.DefaultClient, proxyURL(p, path), nil)
	if err != nil {
		t.Fatalf("scrape %s: %v", path, err)
	}
	if resp.StatusCode != status || (status == 200 && string(body) != "up 1\n") {
		t.Fatalf("scrape %s: %d %q, want %d", path, resp.StatusCode, body, status)
	}
}

func TestSecureChannels(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	target := metricsTarget(t)
	tlsProxy := func(o *server.Options) { o.TLSCertFile, o.TLSKeyFile = s.ServerCert, s.ServerKey }
	mtlsProxy := func(o *server.Options) {
		o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ServerCert, s.ServerKey, s.CAFile
	}
	tests := []struct {
		name  string
		proxy func(*server.Options)
		agent func(*client.Options)
		paths []string // registered and scraped
	}{
		{name: "tls", proxy: tlsProxy, agent: func(o *client.Options) { o.TLSTrustFile = s.CAFile }, paths: []string{"app"}},
		{name: "tls by host name", proxy: tlsProxy, agent: func(o *client.Options) {
			o.TLSTrustFile = s.CAFile
			o.ProxyURLs[0] = strings.Replace(o.ProxyURLs[0], "127.0.0.1", "localhost", 1)
		}, paths: []string{"app"}},
		{name: "tls with authority override", proxy: tlsProxy, agent: func(o *client.Options) {
			o.TLSTrustFile, o.TLSOverrideAuthority = s.CAFile, "localhost"
		}, paths: []string{"app"}},
		{name: "tls with token", proxy: func(o *server.Options) { tlsProxy(o); o.AgentToken = "t0ken" },
			agent: func(o *client.Options) { o.TLSTrustFile, o.AgentToken = s.CAFile, "t0ken" }, paths: []string{"app"}},
		{name: "mutual tls", proxy: mtlsProxy, agent: func(o *client.Options) {
			o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ClientCert, s.ClientKey, s.CAFile
		}, paths: []string{"app"}},
		{name: "mutual tls identity", proxy: func(o *server.Options) {
			mtlsProxy(o)
			o.Identities = []server.Identity{{Name: "team-a", CertSubject: "CN=agent,O=team-a", Paths: []string{"team_a_*"}}}
		}, agent: func(o *client.Options) {
			o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ClientCert, s.ClientKey, s.CAFile
		}, paths: []string{"team_a_app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProxy(t, tt.proxy)
			var pcs []client.PathConfig
			for _, path := range tt.paths {
				pcs = append(pcs, client.PathConfig{Path: path, URL: target.URL + "/metrics"})
			}
			a := startAgent(t, p, pcs, tt.agent)
			waitFor(t, "paths registered", 10*time.Second, func() bool { return a.RegisteredPaths() == len(tt.paths) })
			for _, path := range tt.paths {
				expectScrape(t, p, path, 200)
			}
		})
	}
}

func TestUnauthorizedPathRefusedAlone(t *testing.T) {
	t.Parallel()
	target := metricsTarget(t)
	p := startProxy(t, func(o *server.Options) {
		o.Identities = []server.Identity{{Name: "team-a", Token: "tok-a", Paths: []string{"team_a_*"}}}
	})
	a := startAgent(t, p, []client.PathConfig{
		{Path: "team_a_app", URL: target.URL + "/metrics"},
		{Path: "team_b_app", URL: target.URL + "/metrics"},
	}, func(o *client.Options) { o.AgentToken = "tok-a" })
	waitFor(t, "the allowed path", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
	expectScrape(t, p, "team_a_app", 200)
	expectScrape(t, p, "team_b_app", 404)
	if !a.Connected() || a.RegisteredPaths() != 1 {
		t.Fatalf("connected=%v paths=%d after a refused path", a.Connected(), a.RegisteredPaths())
	}
}

// TestAgentSeesClearRefusals checks what an operator reads in the agent's
// log for each way the proxy or the agent refuses the channel, and that
// the proxy registered nothing.
func TestAgentSeesClearRefusals(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	tlsProxy := func(o *server.Options) { o.TLSCertFile, o.TLSKeyFile = s.ServerCert, s.ServerKey }
	mtlsProxy := func(o *server.Options) {
		o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ServerCert, s.ServerKey, s.CAFile
	}
	tests := []struct {
		name  string
		proxy func(*server.Options)
		agent func(*client.Options)
		want  string // in the agent's log
	}{
		{name: "missing token", proxy: func(o *server.Options) { o.AgentToken = "t0ken" }, agent: func(*client.Options) {},
			want: "the proxy did not accept the agent token"},
		{name: "wrong token", proxy: func(o *server.Options) { o.AgentToken = "t0ken" }, agent: func(o *client.Options) { o.AgentToken = "guess" },
			want: "agent token not recognized"},
		{name: "proxy certificate from another CA", proxy: tlsProxy, agent: func(o *client.Options) { o.TLSTrustFile = s.WrongCAFile },
			want: "is not signed by a CA in trust file"},
		{name: "name mismatch", proxy: tlsProxy, agent: func(o *client.Options) {
			o.TLSTrustFile, o.TLSOverrideAuthority = s.CAFile, "proxy.example.com"
		}, want: `not for \"proxy.example.com\"`},
		{name: "client certificate from another CA", proxy: mtlsProxy, agent: func(o *client.Options) {
			o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.WrongClientCert, s.WrongClientKey, s.CAFile
		}, want: "the proxy does not trust the agent's client certificate"},
		{name: "no client certificate", proxy: mtlsProxy, agent: func(o *client.Options) { o.TLSTrustFile = s.CAFile },
			want: "requires a client certificate"},
		{name: "plaintext agent against TLS port", proxy: tlsProxy, agent: func(*client.Options) {},
			want: "if it serves TLS, connect with https://"},
		{name: "TLS agent against plaintext port", proxy: func(*server.Options) {}, agent: func(o *client.Options) { o.TLSTrustFile = s.CAFile },
			want: "the proxy did not answer with TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			p := startProxy(t, func(o *server.Options) { o.Registerer = reg; tt.proxy(o) })
			logs := testlog.NewRecorder(t)
			a := startAgent(t, p, []client.PathConfig{{Path: "app", URL: "http://127.0.0.1:1/metrics"}}, func(o *client.Options) {
				o.Logger = logs.Logger()
				tt.agent(o)
			})
			waitFor(t, "the refusal in the agent's log", 10*time.Second, func() bool { return strings.Contains(logs.String(), tt.want) })
			if a.Connected() {
				t.Fatal("agent connected")
			}
			expectScrape(t, p, "app", 404)
			if strings.Contains(logs.String(), "t0ken") {
				t.Error("the token appears in the agent's log")
			}
		})
	}
}

func TestCertificateReloadKeepsAgentConnected(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	target := metricsTarget(t)
	reg := prometheus.NewRegistry()
	p := startProxy(t, func(o *server.Options) {
		o.Registerer = reg
		o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ServerCert, s.ServerKey, s.CAFile
	})
	a := startAgent(t, p, []client.PathConfig{{Path: "app", URL: target.URL + "/metrics"}}, func(o *client.Options) {
		o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ClientCert, s.ClientKey, s.CAFile
	})
	waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
	expectScrape(t, p, "app", 200)

	serverSerial := func() string {
		t.Helper()
		c, err := tlsconfig.NewClient(tlsconfig.Files{CertFile: s.ClientCert, KeyFile: s.ClientKey, CAFile: s.CAFile}, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.AgentAddr().String(), c.Config("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serverSerial(); got != s.Server.Cert.SerialNumber.String() {
		t.Fatalf("proxy serves serial %s, want the original certificate", got)
	}
	next, err := s.CA.Issue(testcerts.Request{CommonName: "proxy-renewed", IPs: testcerts.LoopbackIPs, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := next.Write(filepath.Dir(s.ServerCert), strings.TrimSuffix(filepath.Base(s.ServerCert), ".crt")); err != nil {
		t.Fatal(err)
	}
	if got := serverSerial(); got != next.Cert.SerialNumber.String() {
		t.Fatalf("after renewal the proxy serves serial %s, want the renewed certificate", got)
	}
	// The agent connected before the renewal is still on its first
	// session and still answers.
	expectScrape(t, p, "app", 200)
	if !a.Connected() {
		t.Fatal("agent disconnected by the renewal")
	}
	if n := gathered(t, reg, "proxy_connect_count_total"); n != 1 {
		t.Fatalf("%v agent sessions, want 1: the renewal made the agent reconnect", n)
	}
	if _, err := os.Stat(s.ServerKey); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPSTargets(t *testing.T) {
	t.Parallel()
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("up 1\n"))
	}))
	t.Cleanup(target.Close)
	caFile := filepath.Join(t.TempDir(), "target-ca.crt")
	if err := os.WriteFile(caFile, pemOf(target.Certificate().Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		agent  func(*client.Options)
		status int
		log    string
	}{
		{name: "unknown CA refused", agent: func(*client.Options) {}, status: 502},
		{name: "trust file", agent: func(o *client.Options) { o.TargetTrustFile = caFile }, status: 200},
		{name: "insecure switch", agent: func(o *client.Options) { o.TargetInsecureSkipVerify = true }, status: 200,
			log: "https targets are not verified"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := startProxy(t, nil)
			logs := testlog.NewRecorder(t)
			a := startAgent(t, p, []client.PathConfig{{Path: "app", URL: target.URL + "/metrics"}}, func(o *client.Options) {
				o.Logger = logs.Logger()
				tt.agent(o)
			})
			waitFor(t, "path registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 1 })
			resp, body, err := scrape(t, http.DefaultClient, proxyURL(p, "app"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.status == 200 {
				if resp.StatusCode != 200 || string(body) != "up 1\n" {
					t.Fatalf("scrape: %d %q", resp.StatusCode, body)
				}
			} else if resp.StatusCode < 500 || !strings.Contains(string(body), "certificate") {
				t.Fatalf("scrape: %d %q, want a 5xx naming the certificate problem", resp.StatusCode, body)
			}
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("no %q in the agent's log", tt.log)
			}
		})
	}
}

func pemOf(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// gathered reads the value of an unlabelled counter or gauge.
func gathered(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
