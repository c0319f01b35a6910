package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestAgentTokenPrecedence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		agent   bool
		file    string // body of the config file; "" passes none
		args    []string
		env     map[string]string
		want    string
		wantSrc string
	}{
		{name: "proxy file", file: "proxy:\n  agentToken: from-file\n", want: "from-file", wantSrc: "file"},
		{name: "proxy env over file", file: "proxy:\n  agentToken: from-file\n",
			env: map[string]string{"AGENT_TOKEN": "from-env"}, want: "from-env", wantSrc: "env AGENT_TOKEN"},
		{name: "proxy flag over env", file: "proxy:\n  agentToken: from-file\n", args: []string{"--agent_token", "from-flag"},
			env: map[string]string{"AGENT_TOKEN": "from-env"}, want: "from-flag", wantSrc: "flag --agent_token"},
		{name: "proxy -D under env", args: []string{"-Dproxy.agentToken=from-define"},
			env: map[string]string{"AGENT_TOKEN": "from-env"}, want: "from-env", wantSrc: "env AGENT_TOKEN"},
		{name: "proxy empty env keeps the file", file: "proxy:\n  agentToken: from-file\n",
			env: map[string]string{"AGENT_TOKEN": ""}, want: "from-file", wantSrc: "file"},
		{name: "agent file", agent: true, file: "agent:\n  agentToken: from-file\n", want: "from-file", wantSrc: "file"},
		{name: "agent env over file", agent: true, file: "agent:\n  agentToken: from-file\n",
			env: map[string]string{"AGENT_TOKEN": "from-env"}, want: "from-env", wantSrc: "env AGENT_TOKEN"},
		{name: "agent flag over env", agent: true, file: "agent:\n  agentToken: from-file\n", args: []string{"--agent_token=from-flag"},
			env: map[string]string{"AGENT_TOKEN": "from-env"}, want: "from-flag", wantSrc: "flag --agent_token"},
		{name: "shared file, each program its own token", agent: true,
			file: "proxy:\n  agentToken: proxy-side\nagent:\n  agentToken: agent-side\n", want: "agent-side", wantSrc: "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			if tt.file != "" {
				args = append([]string{"--config", writeFile(t, "c.yaml", tt.file)}, args...)
			}
			var got, src string
			if tt.agent {
				l, err := loadAgent(t, args, tt.env)
				if err != nil {
					t.Fatal(err)
				}
				got, src = l.Config.AgentToken, l.Sources["agent.agentToken"]
			} else {
				l, err := loadProxy(t, args, tt.env)
				if err != nil {
					t.Fatal(err)
				}
				got, src = l.Config.AgentToken, l.Sources["proxy.agentToken"]
			}
			if got != tt.want {
				t.Errorf("token = %q, want %q", got, tt.want)
			}
			if !strings.HasPrefix(src, tt.wantSrc) {
				t.Errorf("source = %q, want %s…", src, tt.wantSrc)
			}
		})
	}
}

// TestSecurityKeysLoad loads TLS, identities and the web configuration from
// a file in two formats, with relative paths that must resolve against the
// file's directory, not the working directory.
func TestSecurityKeysLoad(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, file, body string }{
		{name: "yaml", file: "proxy.yaml", body: `
proxy:
  webConfigFile: web.yml
  tls:
    certChainFilePath: certs/server.crt
    privateKeyFilePath: certs/server.key
    trustCertCollectionFilePath: certs/ca.crt
  auth:
    - name: team-a
      token: team-a-token
      paths: ["team_a_*"]
    - name: team-b
      certSubject: "CN=agent-b,O=Team B"
      paths: ["team_b_?"]
    - name: infra
      token: infra-token
      certSANs: ["spiffe://example.org/infra", "infra.example.org"]
`},
		{name: "hocon", file: "proxy.conf", body: `
proxy {
  webConfigFile = web.yml
  tls {
    certChainFilePath = certs/server.crt
    privateKeyFilePath = certs/server.key
    trustCertCollectionFilePath = certs/ca.crt
  }
  auth = [
    { name = team-a, token = team-a-token, paths = ["team_a_*"] }
    { name = team-b, certSubject = "CN=agent-b,O=Team B", paths = ["team_b_?"] }
    { name = infra, token = infra-token, certSANs = ["spiffe://example.org/infra", "infra.example.org"] }
  ]
}
`},
	}
	want := []AuthIdentity{
		{Name: "team-a", Token: "team-a-token", Paths: []string{"team_a_*"}},
		{Name: "team-b", CertSubject: "CN=agent-b,O=Team B", Paths: []string{"team_b_?"}},
		{Name: "infra", Token: "infra-token", CertSANs: []string{"spiffe://example.org/infra", "infra.example.org"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, tt.file)
			if err := os.WriteFile(file, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := loadProxy(t, []string{"--config", file}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := l.Config
			if !reflect.DeepEqual(c.Auth, want) {
				t.Errorf("auth:\n got %+v\nwant %+v", c.Auth, want)
			}
			paths := map[string]string{
				"webConfigFile":               c.WebConfigFile,
				"certChainFilePath":           c.TLS.CertChainFilePath,
				"privateKeyFilePath":          c.TLS.PrivateKeyFilePath,
				"trustCertCollectionFilePath": c.TLS.TrustCertCollectionFilePath,
			}
			wantPaths := map[string]string{
				"webConfigFile":               filepath.Join(dir, "web.yml"),
				"certChainFilePath":           filepath.Join(dir, "certs", "server.crt"),
				"privateKeyFilePath":          filepath.Join(dir, "certs", "server.key"),
				"trustCertCollectionFilePath": filepath.Join(dir, "certs", "ca.crt"),
			}
			if !reflect.DeepEqual(paths, wantPaths) {
				t.Errorf("paths:\n got %v\nwant %v", paths, wantPaths)
			}
		})
	}
}

func TestAgentSecurityPathsResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	body := "agent:\n  webConfigFile: web.yml\n  http:\n    trustStorePath: targets-ca.pem\n" +
		"  tls:\n    certChainFilePath: a.crt\n    privateKeyFilePath: /abs/a.key\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := loadAgent(t, []string{"--config", file, "--trust", "flag-ca.pem"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := l.Config
	got := []string{c.WebConfigFile, c.HTTP.TrustStorePath, c.TLS.CertChainFilePath, c.TLS.PrivateKeyFilePath, c.TLS.TrustCertCollectionFilePath}
	want := []string{filepath.Join(dir, "web.yml"), filepath.Join(dir, "targets-ca.pem"), filepath.Join(dir, "a.crt"), "/abs/a.key", "flag-ca.pem"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paths:\n got %q\nwant %q", got, want)
	}
}

func TestUnknownIdentityKeySuggestsTheRightOne(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "p.yaml", "proxy:\n  auth:\n    - {name: a, token: t1, certSubjct: CN=a}\n")
	got := problems(t, false, []string{"--config", f}, nil)
	want := `unknown key "proxy.auth[0].certSubjct" (file ` + f + `); did you mean "proxy.auth[0].certSubject"?`
	if len(got) != 1 || got[0] != want {
		t.Errorf("problems:\n got %q\nwant [%q]", got, want)
	}
}

func TestTokensNeverInProblems(t *testing.T) {
	t.Parallel()
	f := writeFile(t, "p.yaml", "proxy:\n  agentToken: \"s3cret \"\n  auth:\n    - {name: a, token: s3cret-a}\n    - {name: b, token: s3cret-a}\n")
	got := problems(t, false, []string{"--config", f}, nil)
	if len(got) != 2 {
		t.Errorf("problems = %q, want the white space and the duplicate", got)
	}
	for _, p := range got {
		if strings.Contains(p, "s3cret") {
			t.Errorf("a token leaked: %s", p)
		}
	}
}
