package server_test

import (
	"crypto/tls"
	"hash/crc32"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/tlsconfig"
	"github.com/promproxy/promproxy/server"
)

func TestMutualTLSIdentities(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	p, reg, _ := secureProxy(t, func(o *server.Options) {
		o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile = s.ServerCert, s.ServerKey, s.CAFile
		o.Identities = []server.Identity{
			{Name: "team-a", CertSubject: "CN=agent,O=team-a", Paths: []string{"team_a_*"}},
			{Name: "team-b", CertSANs: []string{"spiffe://example.org/team-b"}, Paths: []string{"team_b_*"}},
			{Name: "team-c", Token: "tok-c", CertSubject: "team-c", Paths: []string{"team_c_*"}},
		}
	})
	teamA := clientTLS(t, tlsconfig.Files{CertFile: s.ClientCert, KeyFile: s.ClientKey, CAFile: s.CAFile})
	teamB := issueClient(t, s, "team-b", testcerts.Request{CommonName: "whatever", URIs: []string{"spiffe://example.org/team-b"}})
	teamC := issueClient(t, s, "team-c", testcerts.Request{CommonName: "team-c"})
	stranger := issueClient(t, s, "stranger", testcerts.Request{CommonName: "stranger"})
	wrongCA := clientTLS(t, tlsconfig.Files{CertFile: s.WrongClientCert, KeyFile: s.WrongClientKey, CAFile: s.CAFile})
	noCert := clientTLS(t, tlsconfig.Files{CAFile: s.CAFile})
	expired := clientTLS(t, tlsconfig.Files{CAFile: s.CAFile})
	expiredPair, err := s.ExpiredClient.TLS()
	if err != nil {
		t.Fatal(err)
	}
	expired.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &expiredPair, nil }

	tests := []struct {
		name    string
		opts    dialOpts
		code    connect.Code
		reason  string // refusal counted by the proxy, if any
		allowed string // a path the identity may register
		denied  string // a path it may not
	}{
		{name: "certificate subject", opts: dialOpts{tls: teamA}, allowed: "team_a_1", denied: "team_b_1"},
		{name: "certificate SAN", opts: dialOpts{tls: teamB}, allowed: "team_b_1", denied: "team_a_2"},
		{name: "token and certificate", opts: dialOpts{tls: teamC, token: "tok-c"}, allowed: "team_c_1", denied: "team_a_3"},
		{name: "stolen token with another certificate", opts: dialOpts{tls: teamA, token: "tok-c"}, code: connect.CodePermissionDenied, reason: "certificate_mismatch"},
		{name: "certificate of no identity", opts: dialOpts{tls: stranger}, code: connect.CodeUnauthenticated, reason: "missing_token"},
		{name: "certificate bound to token identity without its token", opts: dialOpts{tls: teamC}, code: connect.CodeUnauthenticated, reason: "missing_token"},
		// The handshake refusals break the connection: the agent sees a
		// transport failure, reported as unavailable or, when the reset
		// reaches the stream first, canceled.
		{name: "client certificate from another CA", opts: dialOpts{tls: wrongCA}, code: connect.CodeUnavailable},
		{name: "expired client certificate", opts: dialOpts{tls: expired}, code: connect.CodeUnavailable},
		{name: "no client certificate", opts: dialOpts{tls: noCert}, code: connect.CodeUnavailable},
		{name: "plaintext client", opts: dialOpts{}, code: connect.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each refusal checks that nothing was registered.
			var before float64
			if tt.reason != "" {
				before = metricValue(t, reg, refusals, map[string]string{"reason": tt.reason})
			}
			fa, err := openSession(t, p, tt.opts, tt.name)
			if tt.code != 0 {
				if code := connect.CodeOf(err); code != tt.code && (tt.code != connect.CodeUnavailable || code != connect.CodeCanceled) {
					t.Fatalf("got %v, want code %v", err, tt.code)
				}
				if tt.reason != "" {
					if got := metricValue(t, reg, refusals, map[string]string{"reason": tt.reason}); got != before+1 {
						t.Errorf("refusal %q counted %v times, want %v", tt.reason, got, before+1)
					}
				}
				if n := metricValue(t, reg, "proxy_agent_map_size", nil); n != 0 {
					t.Fatalf("%v agents registered after a refusal", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r := fa.registerPath(tt.allowed); !r.GetAccepted() {
				t.Errorf("%s refused: %s", tt.allowed, r.GetReason())
			}
			if r := fa.registerPath(tt.denied); r.GetAccepted() || !strings.Contains(r.GetReason(), "not authorized") {
				t.Errorf("%s: accepted=%v reason %q", tt.denied, r.GetAccepted(), r.GetReason())
			}
			fa.close()
			waitFor(t, "the agent to leave", func() bool { return metricValue(t, reg, "proxy_agent_map_size", nil) == 0 })
		})
	}
}

// answer sends a one-frame 200 answer to a scrape request.
func answer(fa *fakeAgent, req *promproxyv1.ScrapeRequest, body string) {
	f := frame(req.GetScrapeId(), []byte(body))
	f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentType: "text/plain", ContentLength: int64(len(body))}
	f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE([]byte(body))}
	fa.send(f)
}

func TestAuthorizationWarningOnlyWithoutTLS(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	tests := []struct {
		name     string
		tls      bool
		warnings int
	}{
		{name: "h2c", warnings: 1},
		{name: "tls", tls: true, warnings: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var o dialOpts
			p, _, logs := secureProxy(t, func(opts *server.Options) {
				if tt.tls {
					opts.TLSCertFile, opts.TLSKeyFile = s.ServerCert, s.ServerKey
				}
			})
			if tt.tls {
				o.tls = clientTLS(t, tlsconfig.Files{CAFile: s.CAFile})
			}
			fa, err := openSession(t, p, o, "a")
			if err != nil {
				t.Fatal(err)
			}
			if r := fa.registerPath("app"); !r.GetAccepted() {
				t.Fatal(r.GetReason())
			}
			for range 2 {
				res := scrapeAsync(p, "/app", http.Header{"Authorization": {"Bearer t0k"}})
				req := fa.nextScrape()
				if req.GetAuthorization() != "Bearer t0k" {
					t.Fatalf("Authorization not forwarded: %q", req.GetAuthorization())
				}
				answer(fa, req, "up 1\n")
				if r := wait(t, res); r.status != 200 {
					t.Fatalf("scrape: %d %s %v", r.status, r.body, r.err)
				}
			}
			if n := strings.Count(logs.String(), "forwarding Authorization headers"); n != tt.warnings {
				t.Errorf("Authorization warning logged %d times, want %d", n, tt.warnings)
			}
			if strings.Contains(logs.String(), "t0k") {
				t.Error("the forwarded credential appears in the log")
			}
		})
	}
}
