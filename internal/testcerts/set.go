package testcerts

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// Set is a complete set of files for TLS tests and the demo: one CA and
// certificates it signed, plus the broken cases every refusal test needs.
type Set struct {
	Dir string
	// CA signs everything below except WrongClient.
	CA     *CA
	CAFile string
	// Server is valid for localhost, 127.0.0.1 and ::1.
	Server                *Pair
	ServerCert, ServerKey string
	// Client is an agent's client certificate, CN "agent", SAN
	// agent.promproxy.test.
	Client                *Pair
	ClientCert, ClientKey string
	// WrongCA is an unrelated CA; WrongClient is signed by it.
	WrongCA         *CA
	WrongCAFile     string
	WrongClient     *Pair
	WrongClientCert string
	WrongClientKey  string
	// ExpiredServer and ExpiredClient are signed by CA but expired an hour
	// ago.
	ExpiredServer     *Pair
	ExpiredServerCert string
	ExpiredServerKey  string
	ExpiredClient     *Pair
	ExpiredClientCert string
	ExpiredClientKey  string
}

// LoopbackIPs are the addresses the server certificate is valid for.
var LoopbackIPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}

// NewSet creates a Set and writes its files into dir. The good
// certificates are valid for validity (a day when 0).
func NewSet(dir string, validity time.Duration) (*Set, error) {
	if validity <= 0 {
		validity = 24 * time.Hour
	}
	notAfter := time.Now().Add(validity)
	s := &Set{Dir: dir}
	var err error
	step := func(what string, f func() error) {
		if err == nil {
			if e := f(); e != nil {
				err = fmt.Errorf("testcerts: %s: %w", what, e)
			}
		}
	}
	expired := Request{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}
	step("CA", func() (e error) { s.CA, e = NewCA("promproxy test CA"); return })
	step("wrong CA", func() (e error) { s.WrongCA, e = NewCA("unrelated CA"); return })
	step("server", func() (e error) {
		s.Server, e = s.CA.Issue(Request{CommonName: "proxy", DNSNames: []string{"localhost"}, IPs: LoopbackIPs, Server: true, NotAfter: notAfter})
		return
	})
	step("client", func() (e error) {
		s.Client, e = s.CA.Issue(Request{CommonName: "agent", Organization: "team-a", DNSNames: []string{"agent.promproxy.test"}, Client: true, NotAfter: notAfter})
		return
	})
	step("wrong client", func() (e error) {
		s.WrongClient, e = s.WrongCA.Issue(Request{CommonName: "agent", Client: true, NotAfter: notAfter})
		return
	})
	step("expired server", func() (e error) {
		r := expired
		r.CommonName, r.DNSNames, r.IPs, r.Server = "proxy", []string{"localhost"}, LoopbackIPs, true
		s.ExpiredServer, e = s.CA.Issue(r)
		return
	})
	step("expired client", func() (e error) {
		r := expired
		r.CommonName, r.Client = "agent", true
		s.ExpiredClient, e = s.CA.Issue(r)
		return
	})
	step("write", func() (e error) {
		if s.CAFile, e = s.CA.WriteCA(dir, "ca"); e != nil {
			return
		}
		if s.WrongCAFile, e = s.WrongCA.WriteCA(dir, "wrong-ca"); e != nil {
			return
		}
		if s.ServerCert, s.ServerKey, e = s.Server.Write(dir, "server"); e != nil {
			return
		}
		if s.ClientCert, s.ClientKey, e = s.Client.Write(dir, "client"); e != nil {
			return
		}
		if s.WrongClientCert, s.WrongClientKey, e = s.WrongClient.Write(dir, "wrong-client"); e != nil {
			return
		}
		if s.ExpiredServerCert, s.ExpiredServerKey, e = s.ExpiredServer.Write(dir, "expired-server"); e != nil {
			return
		}
		s.ExpiredClientCert, s.ExpiredClientKey, e = s.ExpiredClient.Write(dir, "expired-client")
		return
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Temp writes a Set into a directory removed at the end of the test, and
// fails the test when the set cannot be made.
func Temp(t testing.TB) *Set {
	t.Helper()
	s, err := NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
