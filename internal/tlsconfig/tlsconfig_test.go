package tlsconfig_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/tlsconfig"
)

func newSet(t *testing.T) *testcerts.Set {
	t.Helper()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// logBuffer collects log output so tests can check what was reported.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func TestNewServerErrors(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	garbage := filepath.Join(s.Dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(s.Dir, "missing.pem")
	tests := []struct {
		name  string
		files tlsconfig.Files
		want  []string
	}{
		{name: "no key", files: tlsconfig.Files{CertFile: s.ServerCert}, want: []string{"both a certificate file and a key file"}},
		{name: "missing cert file", files: tlsconfig.Files{CertFile: missing, KeyFile: s.ServerKey}, want: []string{"certificate file", missing, "does not exist"}},
		{name: "missing key file", files: tlsconfig.Files{CertFile: s.ServerCert, KeyFile: missing}, want: []string{"key file", missing, "does not exist"}},
		{name: "key of another certificate", files: tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ClientKey}, want: []string{s.ClientKey, "does not belong to certificate file", s.ServerCert}},
		{name: "expired certificate", files: tlsconfig.Files{CertFile: s.ExpiredServerCert, KeyFile: s.ExpiredServerKey}, want: []string{s.ExpiredServerCert, "expired at"}},
		{name: "certificate not PEM", files: tlsconfig.Files{CertFile: garbage, KeyFile: s.ServerKey}, want: []string{garbage, "no PEM CERTIFICATE"}},
		{name: "key not PEM", files: tlsconfig.Files{CertFile: s.ServerCert, KeyFile: garbage}, want: []string{garbage, "no PEM PRIVATE KEY"}},
		{name: "missing trust file", files: tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey, CAFile: missing}, want: []string{"trust file", missing, "does not exist"}},
		{name: "trust file without certificates", files: tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey, CAFile: s.ServerKey}, want: []string{s.ServerKey, "no PEM CERTIFICATE", "converted to PEM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tlsconfig.NewServer(tt.files, []string{"h2"}, nil)
			if err == nil {
				t.Fatal("NewServer succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewClientErrors(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	if _, err := tlsconfig.NewClient(tlsconfig.Files{CertFile: s.ClientCert}, nil); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("certificate without key: %v", err)
	}
	if _, err := tlsconfig.NewClient(tlsconfig.Files{CertFile: s.ExpiredClientCert, KeyFile: s.ExpiredClientKey}, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired client certificate: %v", err)
	}
}

// handshake runs one TLS handshake between the two configurations and
// returns both sides' errors and the server certificate the client saw.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, cs tls.ConnectionState) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		done <- c.(*tls.Conn).Handshake()
	}()
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, clientErr := tls.DialWithDialer(d, "tcp", ln.Addr().String(), client)
	if clientErr == nil {
		cs = conn.ConnectionState()
		// In TLS 1.3 the client finishes before the server has checked
		// the client certificate; a read surfaces the server's verdict.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, rerr := conn.Read(make([]byte, 1))
		var alert tls.AlertError
		if errors.As(rerr, &alert) || (rerr != nil && strings.Contains(rerr.Error(), "remote error")) {
			clientErr = rerr
		}
		conn.Close()
	}
	return <-done, clientErr, cs
}

func TestHandshakes(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	mtlsServer, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey, CAFile: s.CAFile}, []string{"h2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsServer, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey}, []string{"h2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrongCAServerPair, err := s.WrongCA.Issue(testcerts.Request{CommonName: "impostor", IPs: testcerts.LoopbackIPs, DNSNames: []string{"localhost"}, Server: true})
	if err != nil {
		t.Fatal(err)
	}
	wrongCAServer := staticServer(t, wrongCAServerPair)
	expiredServer := staticServer(t, s.ExpiredServer)

	trustOnly := client(t, tlsconfig.Files{CAFile: s.CAFile})
	withCert := client(t, tlsconfig.Files{CertFile: s.ClientCert, KeyFile: s.ClientKey, CAFile: s.CAFile})
	wrongCACert := staticClient(t, s.WrongClient, s)
	expiredCert := staticClient(t, s.ExpiredClient, s)

	tests := []struct {
		name       string
		server     *tls.Config
		client     *tls.Config
		wantReason tlsconfig.Reason // refused by the client
		serverErr  string           // refused by the server
	}{
		{name: "tls", server: tlsServer, client: trustOnly.Config("127.0.0.1")},
		{name: "tls by dns name", server: tlsServer, client: trustOnly.Config("localhost")},
		{name: "mtls", server: mtlsServer, client: withCert.Config("127.0.0.1")},
		{name: "server from another CA", server: wrongCAServer, client: trustOnly.Config("127.0.0.1"), wantReason: tlsconfig.ReasonUnknownCA},
		{name: "name mismatch", server: tlsServer, client: trustOnly.Config("proxy.example.com"), wantReason: tlsconfig.ReasonNameMismatch},
		{name: "expired server certificate", server: expiredServer, client: trustOnly.Config("127.0.0.1"), wantReason: tlsconfig.ReasonExpired},
		{name: "no client certificate", server: mtlsServer, client: trustOnly.Config("127.0.0.1"), serverErr: "client didn't provide a certificate"},
		{name: "client from another CA", server: mtlsServer, client: wrongCACert, serverErr: "unknown authority"},
		{name: "expired client certificate", server: mtlsServer, client: expiredCert, serverErr: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serr, cerr, cs := handshake(t, tt.server, tt.client)
			switch {
			case tt.wantReason != "":
				var ve *tlsconfig.VerifyError
				if !errors.As(cerr, &ve) || ve.Reason != tt.wantReason {
					t.Fatalf("client error %v, want a VerifyError with reason %s", cerr, tt.wantReason)
				}
				if serr == nil {
					t.Error("server accepted a handshake the client refused")
				}
			case tt.serverErr != "":
				if serr == nil || !strings.Contains(serr.Error(), tt.serverErr) {
					t.Fatalf("server error %v, want one mentioning %q", serr, tt.serverErr)
				}
				if cerr == nil {
					t.Error("client did not see the refusal")
				}
			default:
				if serr != nil || cerr != nil {
					t.Fatalf("handshake failed: server %v, client %v", serr, cerr)
				}
				if cs.Version < tls.VersionTLS12 || cs.NegotiatedProtocol != "h2" {
					t.Errorf("version %x protocol %q", cs.Version, cs.NegotiatedProtocol)
				}
			}
		})
	}
}

func TestServerRefusesOldTLS(t *testing.T) {
	t.Parallel()
	s := newSet(t)
	srv, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey}, []string{"h2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, tlsconfig.Files{CAFile: s.CAFile}).Config("127.0.0.1")
	c.MinVersion, c.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	serr, cerr, _ := handshake(t, srv, c)
	if serr == nil || cerr == nil {
		t.Fatalf("TLS 1.1 handshake: server %v, client %v; want both to fail", serr, cerr)
	}
}

func client(t *testing.T, f tlsconfig.Files) *tlsconfig.Client {
	t.Helper()
	c, err := tlsconfig.NewClient(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// staticServer serves a certificate tlsconfig would refuse to load.
func staticServer(t *testing.T, p *testcerts.Pair) *tls.Config {
	t.Helper()
	cert, err := p.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
}

// staticClient presents a certificate tlsconfig would refuse to load.
func staticClient(t *testing.T, p *testcerts.Pair, s *testcerts.Set) *tls.Config {
	t.Helper()
	cert, err := p.TLS()
	if err != nil {
		t.Fatal(err)
	}
	cfg := client(t, tlsconfig.Files{CAFile: s.CAFile}).Config("127.0.0.1")
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return cfg
}
