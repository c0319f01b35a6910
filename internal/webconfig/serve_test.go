package webconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/testlog"
)

func TestMain(m *testing.M) {
	// Every request looks at the file, so that the tests of edits need not
	// wait; TestLooksAtTheFileAtMostEverySoOften checks the spacing.
	checkEvery = 0
	goleak.VerifyTestMain(m)
}

// serve starts a server under the file at path and returns its address.
// tlsConfigFile writes a web config file named name in dir that serves
// the test set's server certificate, followed by extra lines of
// tls_server_config, and returns its path.
func tlsConfigFile(t *testing.T, dir, name, extra string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	writeFile(t, path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+extra)
	return path
}

func serve(t *testing.T, path string, log *testlog.Recorder) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a := r.Header.Get("Authorization"); a != "" {
				w.Header().Set("X-Seen-Authorization", a)
			}
			_, _ = io.WriteString(w, "ok "+r.Proto)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	if log == nil {
		log = testlog.NewRecorder(t)
	}
	// Refused handshakes are expected here; they belong in the test's log.
	srv.ErrorLog = slog.NewLogLogger(log.Logger().Handler(), slog.LevelInfo)
	done := make(chan error, 1)
	go func() { done <- Serve(ln, srv, path, log.Logger()) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, base string, cfg *tls.Config) *client {
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: base, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func tlsClient(s *testcerts.Set, cert *testcerts.Pair) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(s.CA.Cert)
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c, _ := cert.TLS()
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}

// get returns the status and body, or the error of the request.
func (c *client) get(user, pw string) (*http.Response, string, error) {
	req, _ := http.NewRequestWithContext(c.t.Context(), http.MethodGet, c.base+"/", nil)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b), nil
}

func (c *client) status(user, pw string) int {
	c.t.Helper()
	resp, _, err := c.get(user, pw)
	if err != nil {
		c.t.Fatalf("GET: %v", err)
	}
	return resp.StatusCode
}

func TestTLSAndHTTP2(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"HTTP/2 by default", "", "HTTP/2.0"},
		{"HTTP/2 off", "http_server_config:\n  http2: false\n", "HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tlsConfigFile(t, s.Dir, strings.NewReplacer(" ", "-", "/", "").Replace(tc.name)+".yml", tc.extra)
			c := newClient(t, "https://"+serve(t, path, nil), tlsClient(s, nil))
			resp, body, err := c.get("", "")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || body != "ok "+tc.want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "ok "+tc.want)
			}
			if resp.TLS == nil {
				t.Error("answered without TLS")
			}
		})
	}
}

func TestTLSVersionFloor(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	path := tlsConfigFile(t, s.Dir, "web.yml", "  min_version: TLS13\n")
	addr := serve(t, path, nil)
	old := tlsClient(s, nil)
	old.MaxVersion = tls.VersionTLS12
	if _, _, err := newClient(t, "https://"+addr, old).get("", ""); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("TLS 1.2 client against min_version TLS13: %v, want a protocol version refusal", err)
	}
	if code := newClient(t, "https://"+addr, tlsClient(s, nil)).status("", ""); code != http.StatusOK {
		t.Errorf("TLS 1.3 client: %d", code)
	}
}

func TestClientCertificates(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	other, err := s.CA.Issue(testcerts.Request{CommonName: "other", DNSNames: []string{"other.promproxy.test"}, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	path := tlsConfigFile(t, s.Dir, "web.yml",
		"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [agent.promproxy.test]\n")
	log := testlog.NewRecorder(t)
	base := "https://" + serve(t, path, log)
	for _, tc := range []struct {
		name string
		cert *testcerts.Pair
		ok   bool
	}{
		{"allowed SAN", s.Client, true},
		{"no certificate", nil, false},
		{"certificate of another CA", s.WrongClient, false},
		{"SAN not allowed", other, false},
	} {
		_, _, err := newClient(t, base, tlsClient(s, tc.cert)).get("", "")
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want accepted %v", tc.name, err, tc.ok)
		}
	}
}

func TestBasicAuthHeadersAndRateLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yml")
	writeFile(t, path, "basic_auth_users:\n  prometheus: "+hashOf(t, "scrape-pw")+"\n"+
		"http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n")
	c := newClient(t, "http://"+serve(t, path, nil), nil)
	for _, tc := range []struct {
		name, user, pw string
		want           int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "prometheus", "nope", http.StatusUnauthorized},
		{"unknown user", "ops", "scrape-pw", http.StatusUnauthorized},
		{"right password", "prometheus", "scrape-pw", http.StatusOK},
		{"right password, remembered", "prometheus", "scrape-pw", http.StatusOK},
		{"wrong password after a right one", "prometheus", "scrape-pw2", http.StatusUnauthorized},
	} {
		resp, _, err := c.get(tc.user, tc.pw)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, resp.Header.Get("WWW-Authenticate"))
		}
		// The listener's credential stops at the listener: the proxy
		// passes a request's Authorization on to the target.
		if a := resp.Header.Get("X-Seen-Authorization"); a != "" {
			t.Errorf("%s: the handler behind basic auth saw Authorization %q", tc.name, a)
		}
		// The headers protect the refusals as well as the answers.
		if resp.Header.Get("X-Frame-Options") != "deny" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", tc.name, resp.Header)
		}
	}

	limited := filepath.Join(dir, "limited.yml")
	writeFile(t, limited, "rate_limit:\n  interval: 1h\n  burst: 2\n")
	c = newClient(t, "http://"+serve(t, limited, nil), nil)
	for i, want := range []int{http.StatusOK, http.StatusOK, http.StatusTooManyRequests, http.StatusTooManyRequests} {
		if got := c.status("", ""); got != want {
			t.Errorf("request %d: %d, want %d", i+1, got, want)
		}
	}
}

func TestRememberedAnswersAreBounded(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, path, "basic_auth_users:\n  prometheus: "+hashOf(t, "pw")+"\n")
	st, err := load(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := newHandler(nil, nil)
	try := func(pw string) bool {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.SetBasicAuth("prometheus", pw)
		return h.authorized(st, r)
	}
	if !try("pw") {
		t.Fatal("right password refused")
	}
	for i := range 3 * seenMax {
		if try(strings.Repeat("x", i)) {
			t.Fatalf("password %d accepted", i)
		}
		if len(h.refused) > seenMax {
			t.Fatalf("%d refusals remembered, want at most %d", len(h.refused), seenMax)
		}
	}
	// The flood of wrong guesses has not pushed the right answer out.
	if len(h.accepted) != 1 || !try("pw") {
		t.Errorf("after %d wrong guesses: %d accepted answers remembered, want the one", 3*seenMax, len(h.accepted))
	}
}

func TestChangesArePickedUp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yml")
	writeFile(t, path, "basic_auth_users:\n  prometheus: "+hashOf(t, "old")+"\n")
	log := testlog.NewRecorder(t)
	c := newClient(t, "http://"+serve(t, path, log), nil)
	if code := c.status("prometheus", "old"); code != http.StatusOK {
		t.Fatalf("old password: %d", code)
	}

	writeFile(t, path, "basic_auth_users:\n  prometheus: "+hashOf(t, "new")+"\n")
	if code := c.status("prometheus", "old"); code != http.StatusUnauthorized {
		t.Errorf("old password after the change: %d, want 401", code)
	}
	if code := c.status("prometheus", "new"); code != http.StatusOK {
		t.Errorf("new password after the change: %d, want 200", code)
	}

	// A broken edit, or one that would need a restart, must not open the
	// listener: the last good configuration stays.
	for _, bad := range []string{
		"basic_auth_users:\n  prometheus: new\n",
		"basic_auth_users: {}\ntls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
	} {
		writeFile(t, path, bad)
		if code := c.status("", ""); code != http.StatusUnauthorized {
			t.Errorf("after the edit %q: %d without credentials, want 401", bad, code)
		}
		if code := c.status("prometheus", "new"); code != http.StatusOK {
			t.Errorf("after the edit %q: %d with the last good password, want 200", bad, code)
		}
	}
	if !strings.Contains(log.String(), "web config file reloaded") || !strings.Contains(log.String(), "cannot be used") {
		t.Errorf("log does not tell of the reload and the refused edits:\n%s", log)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if code := c.status("", ""); code != http.StatusUnauthorized {
		t.Errorf("with the file gone: %d without credentials, want 401", code)
	}
	// An empty file is valid and names no users: taking basic auth away is
	// an edit like any other.
	writeFile(t, path, "")
	if code := c.status("", ""); code != http.StatusOK {
		t.Errorf("after emptying the file: %d without credentials, want 200", code)
	}
}

// servedSerial is the serial number of the certificate a new connection
// to addr is shown.
func servedSerial(t *testing.T, addr string, s *testcerts.Set) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, tlsClient(s, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestRenewedCertificateIsServed(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	path := tlsConfigFile(t, s.Dir, "web.yml", "")
	addr := serve(t, path, nil)
	serial := func() string { return servedSerial(t, addr, s) }
	first := serial()
	renewed, err := s.CA.Issue(testcerts.Request{CommonName: "proxy", IPs: testcerts.LoopbackIPs, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Dir, "server.key"), string(renewed.KeyPEM))
	writeFile(t, filepath.Join(s.Dir, "server.crt"), string(renewed.CertPEM))
	if got := serial(); got != renewed.Cert.SerialNumber.String() || got == first {
		t.Errorf("after renewal the server shows serial %s, want the renewed %s (first %s)", got, renewed.Cert.SerialNumber, first)
	}
	// Half a rotation (a key that does not match) keeps the last good pair.
	writeFile(t, filepath.Join(s.Dir, "server.key"), string(s.Client.KeyPEM))
	if got := serial(); got != renewed.Cert.SerialNumber.String() {
		t.Errorf("with a mismatched key the server shows serial %s, want the last good %s", got, renewed.Cert.SerialNumber)
	}
}

// An edit that names certificate files not yet in place is refused, and
// picked up once they appear, without another edit of the file.
func TestRefusedEditIsRetried(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	path := tlsConfigFile(t, s.Dir, "web.yml", "")
	log := testlog.NewRecorder(t)
	addr := serve(t, path, log)
	serial := func() string { return servedSerial(t, addr, s) }
	first := serial()
	writeFile(t, path, "tls_server_config:\n  cert_file: next.crt\n  key_file: next.key\n")
	if got := serial(); got != first {
		t.Fatalf("serial %s while the new files are missing, want the first %s", got, first)
	}
	next, err := s.CA.Issue(testcerts.Request{CommonName: "proxy", IPs: testcerts.LoopbackIPs, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(s.Dir, "next.key"), string(next.KeyPEM))
	writeFile(t, filepath.Join(s.Dir, "next.crt"), string(next.CertPEM))
	want := next.Cert.SerialNumber.String()
	deadline := time.Now().Add(10 * time.Second)
	for serial() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the new certificate was not picked up within 10 s of its files appearing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := strings.Count(log.String(), "cannot be used"); n != 1 {
		t.Errorf("the refused edit was reported %d times, want once:\n%s", n, log)
	}
}

// A request looks at the file only once the interval since the last look
// has passed: a stat on every request would be a system call on every
// scrape.
func TestLooksAtTheFileAtMostEverySoOften(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "web.yml")
	writeFile(t, path, "basic_auth_users:\n  old: "+hashOf(t, "pw")+"\n")
	src, err := newSource(path, testlog.NewRecorder(t).Logger(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "basic_auth_users:\n  new: "+hashOf(t, "pw")+"\n")
	if _, ok := src.get().users["old"]; !ok {
		t.Fatal("the edit was picked up before the interval passed")
	}
	src.next.Store(0) // the interval has passed
	if _, ok := src.get().users["new"]; !ok {
		t.Fatal("the edit was not picked up once the interval passed")
	}
}
