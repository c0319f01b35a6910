package server_test

import (
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"

	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/server"
)

const refusals = "proxy_agent_auth_refusals_total"

func TestAgentTokenRefusals(t *testing.T) {
	t.Parallel()
	p, reg, logs := secureProxy(t, func(o *server.Options) { o.AgentToken = "shared-s3cret" })
	good := dialOpts{token: "shared-s3cret"}
	live, err := openSession(t, p, good, "live")
	if err != nil {
		t.Fatal(err)
	}
	if r := live.registerPath("app"); !r.GetAccepted() {
		t.Fatalf("app refused: %s", r.GetReason())
	}
	tests := []struct {
		name   string
		opts   dialOpts
		code   connect.Code
		reason string
	}{
		{name: "no token", opts: dialOpts{}, code: connect.CodeUnauthenticated, reason: "missing_token"},
		{name: "wrong token", opts: dialOpts{token: "guess"}, code: connect.CodeUnauthenticated, reason: "wrong_token"},
		{name: "token with a suffix", opts: dialOpts{token: "shared-s3cret2"}, code: connect.CodeUnauthenticated, reason: "wrong_token"},
		{name: "another connection's agent id", opts: dialOpts{token: "shared-s3cret", header: http.Header{"Agent-Id": {live.id}}},
			code: connect.CodePermissionDenied, reason: "agent_id_of_other_connection"},
		{name: "ended session", opts: dialOpts{token: "shared-s3cret", header: http.Header{"Agent-Id": {"0123456789abcdef"}}},
			code: connect.CodeNotFound, reason: "ended_session"},
		{name: "agent id without a token", opts: dialOpts{header: http.Header{"Agent-Id": {live.id}}},
			code: connect.CodeUnauthenticated, reason: "missing_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Not parallel: each case checks the counters it moves.
			before := metricValue(t, reg, refusals, map[string]string{"reason": tt.reason})
			_, err := openSession(t, p, tt.opts, "intruder")
			if connect.CodeOf(err) != tt.code {
				t.Fatalf("got %v, want code %v", err, tt.code)
			}
			if got := metricValue(t, reg, refusals, map[string]string{"reason": tt.reason}); got != before+1 {
				t.Errorf("%s{reason=%q} = %v, want %v", refusals, tt.reason, got, before+1)
			}
			list := agents(t, p, good)
			if len(list) != 1 || list[0].GetAgentId() != live.id || len(list[0].GetPaths()) != 1 {
				t.Fatalf("after the refusal the proxy lists %v, want only the live agent with its path", list)
			}
		})
	}
	// The unary RPC is guarded too.
	if _, err := serviceClient(t, p, dialOpts{}).ListAgents(t.Context(), nil); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("ListAgents without a token: %v", err)
	}
	if strings.Contains(logs.String(), "shared-s3cret") || strings.Contains(logs.String(), "guess") {
		t.Error("a token appears in the proxy's log")
	}
	if !strings.Contains(logs.String(), "agent tokens travel in cleartext") {
		t.Error("no startup warning about tokens on a cleartext port")
	}
}

func TestOpenAgentPortWarns(t *testing.T) {
	t.Parallel()
	_, _, logs := secureProxy(t, nil)
	if n := strings.Count(logs.String(), "the agent port accepts any agent"); n != 1 {
		t.Errorf("open-port warning logged %d times, want once", n)
	}
}

func TestIdentities(t *testing.T) {
	t.Parallel()
	p, reg, _ := secureProxy(t, func(o *server.Options) {
		o.Identities = []server.Identity{
			{Name: "team-a", Token: "tok-a", Paths: []string{"team_a_*"}},
			{Name: "team-b", Token: "tok-b", Paths: []string{"team_b_?", "shared"}},
			{Name: "infra", Token: "tok-infra"},
		}
		o.AgentToken = "legacy"
	})
	a, err := openSession(t, p, dialOpts{token: "tok-a"}, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := openSession(t, p, dialOpts{token: "tok-b"}, "b")
	if err != nil {
		t.Fatal(err)
	}
	infra, err := openSession(t, p, dialOpts{token: "tok-infra"}, "infra")
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := openSession(t, p, dialOpts{token: "legacy"}, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name     string
		agent    *fakeAgent
		path     string
		accepted bool
		reason   string
	}{
		{name: "own glob", agent: a, path: "team_a_node", accepted: true},
		{name: "outside glob", agent: a, path: "team_b_1", reason: `identity "team-a" is not authorized for path "team_b_1"`},
		{name: "refused alone", agent: a, path: "team_a_app", accepted: true},
		{name: "question mark", agent: b, path: "team_b_1", accepted: true},
		{name: "question mark needs one character", agent: b, path: "team_b_12", reason: "not authorized"},
		{name: "allow-all cannot displace another identity", agent: infra, path: "team_b_1", reason: `identity "team-b"`},
		{name: "shared token cannot displace another identity", agent: legacy, path: "team_a_node", reason: `identity "team-a"`},
		{name: "allow-all takes a free path", agent: infra, path: "shared", accepted: true},
		{name: "other identity cannot take it back", agent: b, path: "shared", reason: `identity "infra"`},
	}
	for _, s := range steps {
		r := s.agent.registerPath(s.path)
		if r.GetAccepted() != s.accepted || !strings.Contains(r.GetReason(), s.reason) {
			t.Fatalf("%s: accepted=%v reason %q; want accepted=%v reason containing %q", s.name, r.GetAccepted(), r.GetReason(), s.accepted, s.reason)
		}
	}
	owners := map[string]string{}
	for _, ag := range agents(t, p, dialOpts{token: "tok-infra"}) {
		for _, path := range ag.GetPaths() {
			owners[path] = ag.GetAgentName()
		}
	}
	want := map[string]string{"team_a_node": "a", "team_a_app": "a", "team_b_1": "b", "shared": "infra"}
	for path, name := range want {
		if owners[path] != name {
			t.Errorf("path %q served by %q, want %q (all: %v)", path, owners[path], name, owners)
		}
	}
	if len(owners) != len(want) {
		t.Errorf("paths %v, want %v", owners, want)
	}
	if got := metricValue(t, reg, refusals, map[string]string{"reason": "path_not_authorized"}); got != 2 {
		t.Errorf("path_not_authorized = %v, want 2", got)
	}
	if got := metricValue(t, reg, refusals, map[string]string{"reason": "path_owned_by_other_identity"}); got != 3 {
		t.Errorf("path_owned_by_other_identity = %v, want 3", got)
	}

	// A second agent of the same identity may still displace the first,
	// which is how a restarted agent takes its paths back.
	a2, err := openSession(t, p, dialOpts{token: "tok-a"}, "a2")
	if err != nil {
		t.Fatal(err)
	}
	if r := a2.registerPath("team_a_node"); !r.GetAccepted() {
		t.Fatalf("same identity displacement refused: %s", r.GetReason())
	}
}

func TestNewRefusesBadSecurityOptions(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	tests := []struct {
		name   string
		mutate func(*server.Options)
		want   []string
		secret string
	}{
		{name: "trust without certificate", mutate: func(o *server.Options) { o.TLSTrustFile = s.CAFile },
			want: []string{"TLSTrustFile", "mutual TLS needs TLSCertFile"}},
		{name: "certificate without key", mutate: func(o *server.Options) { o.TLSCertFile = s.ServerCert },
			want: []string{"TLSCertFile/TLSKeyFile"}},
		{name: "missing certificate file", mutate: func(o *server.Options) { o.TLSCertFile, o.TLSKeyFile = s.Dir+"/nope.crt", s.ServerKey },
			want: []string{"nope.crt", "does not exist"}},
		{name: "key of another certificate", mutate: func(o *server.Options) { o.TLSCertFile, o.TLSKeyFile = s.ServerCert, s.ClientKey },
			want: []string{"does not belong to certificate file"}},
		{name: "expired certificate", mutate: func(o *server.Options) { o.TLSCertFile, o.TLSKeyFile = s.ExpiredServerCert, s.ExpiredServerKey },
			want: []string{"expired at"}},
		{name: "identity without name", mutate: func(o *server.Options) { o.Identities = []server.Identity{{Token: "x"}} },
			want: []string{"Identities[0].Name"}},
		{name: "duplicate names", mutate: func(o *server.Options) {
			o.Identities = []server.Identity{{Name: "a", Token: "x"}, {Name: "a", Token: "y"}}
		}, want: []string{"Identities[1].Name", "unique"}},
		{name: "duplicate tokens", mutate: func(o *server.Options) {
			o.Identities = []server.Identity{{Name: "a", Token: "dup-secret"}, {Name: "b", Token: "dup-secret"}}
		}, want: []string{"Identities[1].Token", "same token as Identities[0]"}, secret: "dup-secret"},
		{name: "identity token equals shared token", mutate: func(o *server.Options) {
			o.AgentToken = "same-secret"
			o.Identities = []server.Identity{{Name: "a", Token: "same-secret"}}
		}, want: []string{"same token as AgentToken"}, secret: "same-secret"},
		{name: "identity without credential", mutate: func(o *server.Options) { o.Identities = []server.Identity{{Name: "a"}} },
			want: []string{"needs a Token, a CertSubject or CertSANs"}},
		{name: "certificate identity without mTLS", mutate: func(o *server.Options) {
			o.Identities = []server.Identity{{Name: "a", CertSubject: "CN=agent"}}
		}, want: []string{"needs mutual TLS"}},
		{name: "bad glob", mutate: func(o *server.Options) {
			o.Identities = []server.Identity{{Name: "a", Token: "x", Paths: []string{"team/a"}}}
		}, want: []string{"Identities[0].Paths[0]", "no path can contain"}},
		{name: "token with a newline", mutate: func(o *server.Options) { o.AgentToken = "abc\ndef" },
			want: []string{"AgentToken", "printable ASCII"}, secret: "abc"},
		{name: "missing web config", mutate: func(o *server.Options) { o.WebConfigFile = s.Dir + "/web.yml" },
			want: []string{"WebConfigFile", "web.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := server.DefaultOptions()
			opts.ListenAddr, opts.AgentListenAddr = "127.0.0.1:0", "127.0.0.1:0"
			tt.mutate(&opts)
			p, err := server.New(opts)
			if err == nil {
				t.Fatalf("New accepted the options (proxy on %v)", p.AgentAddr())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("error reveals the token: %q", err)
			}
		})
	}
}

// TestHeadAnsweredBeforeAuthentication checks the HEAD that agents send
// before opening a session: it is answered without a token, and it neither
// counts nor logs as a refused agent, so an agent whose token is refused
// is counted once per attempt, for its session, not twice.
func TestHeadAnsweredBeforeAuthentication(t *testing.T) {
	t.Parallel()
	p, reg, logs := secureProxy(t, func(o *server.Options) { o.AgentToken = "shared-s3cret" })
	c := &http.Client{Transport: transport.NewClientTransport(nil, transport.DefaultKeepalive)}
	t.Cleanup(c.CloseIdleConnections)
	for _, path := range []string{promproxyv1connect.ProxyServiceSessionProcedure, "/"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodHead, "http://"+p.AgentAddr().String()+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Errorf("HEAD %s: %s over %s; want 200 over HTTP/2", path, resp.Status, resp.Proto)
		}
	}
	if got := metricValue(t, reg, refusals, map[string]string{"reason": "missing_token"}); got != 0 {
		t.Errorf("%s{reason=\"missing_token\"} = %v after HEADs; want 0", refusals, got)
	}
	if strings.Contains(logs.String(), "refused") {
		t.Errorf("a HEAD was logged as a refusal:\n%s", logs.String())
	}
	// Everything else still needs the token.
	if _, err := openSession(t, p, dialOpts{}, "intruder"); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("session without a token: %v", err)
	}
}
