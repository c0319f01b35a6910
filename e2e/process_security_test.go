package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promproxy/promproxy/internal/testcerts"
)

// TestProcessMutualTLSIdentities runs the built binaries with the security
// settings an operator would use: the proxy reads mutual TLS and an
// identity from a config file that names its certificates by paths
// relative to itself, the agents get theirs from flags. One agent of the
// identity serves a path byte for byte and is refused the path outside the
// identity's globs; an agent with a wrong token registers nothing.
func TestProcessMutualTLSIdentities(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	cfg := filepath.Join(s.Dir, "proxy.yaml")
	if err := os.WriteFile(cfg, []byte(`proxy:
  tls:
    certChainFilePath: server.crt
    privateKeyFilePath: server.key
    trustCertCollectionFilePath: ca.crt
  auth:
    - name: team-a
      token: team-a-token
      certSubject: "CN=agent,O=team-a"
      paths: ["team_a_*"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Larger than one chunk, so chunking, gzip and reassembly are on the
	// path through TLS.
	body := exposition(100 << 10)
	target := newTarget(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(body)
	})
	p := startProxyProcess(t, "--config", cfg)
	tlsFlags := []string{"--cert", s.ClientCert, "--key", s.ClientKey, "--trust", s.CAFile}

	good := startAgentProcess(t, "team-a-agent", []string{p.agentAddr}, []pathConfig{
		{name: "allowed", path: "team_a_app", url: target.URL + "/metrics"},
		{name: "outside the globs", path: "team_b_app", url: target.URL + "/metrics"},
	}, append(tlsFlags, "--agent_token", "team-a-token")...)
	wrong := startAgentProcess(t, "wrong-token-agent", []string{p.agentAddr}, []pathConfig{
		{name: "free path of the identity", path: "team_a_free", url: target.URL + "/metrics"},
	}, append(tlsFlags, "--agent_token", "not-the-token")...)

	var got []byte
	waitFor(t, "team_a_app to be served over mutual TLS", 20*time.Second, func() bool {
		resp, b, err := scrape(t, http.DefaultClient, p.url("team_a_app"), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false
		}
		got = b
		return true
	})
	if !bytes.Equal(got, body) {
		t.Errorf("scrape through mutual TLS: %d bytes, want the target's %d bytes unchanged", len(got), len(body))
	}

	waitFor(t, "the path outside the globs to be refused", 10*time.Second, func() bool {
		return strings.Contains(good.stderr.String(), `identity \"team-a\" is not authorized for path \"team_b_app\"`)
	})
	waitFor(t, "the wrong token to be refused", 10*time.Second, func() bool {
		return strings.Contains(wrong.stderr.String(), "the proxy did not accept the agent token")
	})
	for _, path := range []string{"team_b_app", "team_a_free"} {
		resp, b, err := scrape(t, http.DefaultClient, p.url(path), nil)
		if err != nil || resp.StatusCode != http.StatusNotFound {
			t.Errorf("scrape %s: %v %v %q, want 404: nothing may be registered", path, err, statusOf(resp), b)
		}
	}
	// The refusals did not disturb the identity's allowed path.
	if resp, b, err := scrape(t, http.DefaultClient, p.url("team_a_app"), nil); err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(b, body) {
		t.Errorf("team_a_app after the refusals: %v %v, %d bytes", err, statusOf(resp), len(b))
	}
	logs := p.stderr.String() + good.stderr.String() + wrong.stderr.String()
	if !strings.Contains(p.stderr.String(), "wrong_token") {
		t.Errorf("the proxy did not log the wrong token's refusal:\n%s", p.stderr.String())
	}
	for _, secret := range []string{"team-a-token", "not-the-token"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a token appears in the logs: %s", secret)
		}
	}
}

func statusOf(resp *http.Response) any {
	if resp == nil {
		return "no response"
	}
	return resp.StatusCode
}
