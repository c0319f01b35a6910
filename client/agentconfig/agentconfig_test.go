package agentconfig_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/client/agentconfig"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, body string
	}{
		{name: "yaml", file: "agent.yaml", body: `
agent:
  name: embedded
  proxy:
    hostname: "proxy-a:50051,proxy-b"
  scrapeTimeoutSecs: 7
  pathConfigs:
    - name: app
      path: app_metrics
      url: http://127.0.0.1:9100/metrics
      labels: "{\"team\": \"web\"}"
`},
		{name: "hocon", file: "agent.conf", body: `
agent {
  name = embedded
  proxy.hostname = "proxy-a:50051,proxy-b"
  scrapeTimeoutSecs = 7
  pathConfigs = [{
    name = app
    path = app_metrics
    url = "http://127.0.0.1:9100/metrics"
    labels = "{\"team\": \"web\"}"
  }]
}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), tt.file)
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			o, err := agentconfig.Load(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if o.AgentName != "embedded" || o.ScrapeTimeout != 7*time.Second {
				t.Errorf("name %q timeout %v", o.AgentName, o.ScrapeTimeout)
			}
			if got := strings.Join(o.ProxyURLs, ","); !strings.Contains(got, "proxy-a:50051") || !strings.Contains(got, "proxy-b") {
				t.Errorf("proxies %q", got)
			}
			if len(o.Paths) != 1 || o.Paths[0].Path != "app_metrics" || o.Paths[0].Labels["team"] != "web" {
				t.Errorf("paths %+v", o.Paths)
			}
			if _, err := client.New(o); err != nil {
				t.Fatalf("loaded options do not make an agent: %v", err)
			}
		})
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte("agent:\n  nmae: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := agentconfig.Load(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "agent.nmae") {
		t.Fatalf("err = %v, want the unknown key named", err)
	}
}

func TestLoadSecuritySettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	body := `
agent:
  agentToken: team-a-token
  tls:
    certChainFilePath: certs/agent.crt
    privateKeyFilePath: certs/agent.key
    trustCertCollectionFilePath: certs/ca.crt
    overrideAuthority: proxy.internal
  http:
    trustStorePath: targets-ca.pem
    enableTrustAllX509Certificates: true
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := agentconfig.Load(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{o.AgentToken, o.TLSCertFile, o.TLSKeyFile, o.TLSTrustFile, o.TLSOverrideAuthority, o.TargetTrustFile}
	want := []string{"team-a-token", filepath.Join(dir, "certs", "agent.crt"), filepath.Join(dir, "certs", "agent.key"),
		filepath.Join(dir, "certs", "ca.crt"), "proxy.internal", filepath.Join(dir, "targets-ca.pem")}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("options:\n got %q\nwant %q", got, want)
	}
	if !o.TargetInsecureSkipVerify {
		t.Error("TargetInsecureSkipVerify not set")
	}
}
