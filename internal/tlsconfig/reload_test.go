package tlsconfig_test

import (
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/tlsconfig"
)

func TestServerReloadsCertificate(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	var logs logBuffer
	srv, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey}, []string{"h2"}, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t, tlsconfig.Files{CAFile: s.CAFile}).Config("127.0.0.1")
	serial := func() string {
		t.Helper()
		serr, cerr, cs := handshake(t, srv, cl)
		if serr != nil || cerr != nil {
			t.Fatalf("handshake: server %v, client %v", serr, cerr)
		}
		return cs.PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != s.Server.Cert.SerialNumber.String() {
		t.Fatalf("first handshake saw serial %s, want the original", got)
	}

	next, err := s.CA.Issue(testcerts.Request{CommonName: "proxy-2", IPs: testcerts.LoopbackIPs, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := next.Write(s.Dir, "server"); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != next.Cert.SerialNumber.String() {
		t.Fatalf("after replacing the files the handshake saw serial %s, want the new certificate's", got)
	}
	if !strings.Contains(logs.String(), "certificate reloaded") {
		t.Errorf("reload not logged: %s", logs.String())
	}

	// A broken replacement (key of another certificate) is refused and the
	// last good certificate stays in use.
	if err := os.WriteFile(s.ServerKey, s.Client.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != next.Cert.SerialNumber.String() {
		t.Fatalf("after a broken replacement the handshake saw serial %s, want the last good one", got)
	}
	_ = serial()
	if n := strings.Count(logs.String(), "cannot be used"); n != 1 {
		t.Errorf("broken replacement logged %d times, want once: %s", n, logs.String())
	}

	// A missing file is also survived.
	if err := os.Remove(s.ServerKey); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != next.Cert.SerialNumber.String() {
		t.Fatalf("with the key file gone the handshake saw serial %s", got)
	}
}

func TestServerReloadsTrustFile(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	srv, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey, CAFile: s.CAFile}, []string{"h2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := staticClient(t, s.WrongClient, s)
	if serr, _, _ := handshake(t, srv, wrong); serr == nil {
		t.Fatal("client of the other CA accepted before the trust file changed")
	}
	// Trust both CAs from now on.
	if err := os.WriteFile(s.CAFile, append(append([]byte{}, s.CA.PEM...), s.WrongCA.PEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	if serr, cerr, _ := handshake(t, srv, wrong); serr != nil || cerr != nil {
		t.Fatalf("after adding its CA: server %v, client %v", serr, cerr)
	}
}

func TestClientReloadsFiles(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	srv, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey, CAFile: s.CAFile}, []string{"h2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, tlsconfig.Files{CertFile: s.ClientCert, KeyFile: s.ClientKey, CAFile: s.CAFile})
	var presented string
	srv.GetConfigForClient = wrapVerify(srv.GetConfigForClient, func(cs tls.ConnectionState) { presented = cs.PeerCertificates[0].Subject.CommonName })
	if serr, cerr, _ := handshake(t, srv, c.Config("127.0.0.1")); serr != nil || cerr != nil {
		t.Fatalf("handshake: %v %v", serr, cerr)
	}
	if presented != "agent" {
		t.Fatalf("client presented %q", presented)
	}
	next, err := s.CA.Issue(testcerts.Request{CommonName: "agent-2", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := next.Write(s.Dir, "client"); err != nil {
		t.Fatal(err)
	}
	if serr, cerr, _ := handshake(t, srv, c.Config("127.0.0.1")); serr != nil || cerr != nil {
		t.Fatalf("handshake after client certificate change: %v %v", serr, cerr)
	}
	if presented != "agent-2" {
		t.Fatalf("client presented %q after its files changed, want agent-2", presented)
	}
	// Replacing the client's trust file with another CA makes it refuse
	// the same server on the next handshake.
	if err := os.WriteFile(s.CAFile, s.WrongCA.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	_, cerr, _ := handshake(t, srv, c.Config("127.0.0.1"))
	var ve *tlsconfig.VerifyError
	if !errors.As(cerr, &ve) || ve.Reason != tlsconfig.ReasonUnknownCA {
		t.Fatalf("after the trust file changed: %v, want unknown CA", cerr)
	}
}

// wrapVerify lets a test see each accepted client certificate.
func wrapVerify(get func(*tls.ClientHelloInfo) (*tls.Config, error), seen func(tls.ConnectionState)) func(*tls.ClientHelloInfo) (*tls.Config, error) {
	return func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		cfg, err := get(h)
		if err != nil {
			return nil, err
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			seen(cs)
			return nil
		}
		return cfg, nil
	}
}
