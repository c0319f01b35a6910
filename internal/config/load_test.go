package config

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeFile writes a config file into a fresh directory.
func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadProxy(t *testing.T, args []string, env map[string]string) (*Loaded[Proxy], error) {
	t.Helper()
	l, _, err := LoadProxy(t.Context(), Input{Args: args, Env: envOf(env)})
	return l, err
}

func loadAgent(t *testing.T, args []string, env map[string]string) (*Loaded[Agent], error) {
	t.Helper()
	l, _, err := LoadAgent(t.Context(), Input{Args: args, Env: envOf(env)})
	return l, err
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "proxy.yaml", "proxy:\n  http:\n    port: 9001\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantSrc string
	}{
		{name: "default", want: 8080, wantSrc: ""},
		{name: "file over default", args: []string{"--config", file}, want: 9001, wantSrc: "file " + file},
		{name: "config file named by env", env: map[string]string{"PROXY_CONFIG": file}, want: 9001, wantSrc: "file " + file},
		{name: "-D over file", args: []string{"--config", file, "-Dproxy.http.port=9002"}, want: 9002, wantSrc: "-Dproxy.http.port"},
		{name: "-D with a space", args: []string{"-D", "proxy.http.port=9002"}, want: 9002, wantSrc: "-Dproxy.http.port"},
		{name: "env over -D and file", args: []string{"--config", file, "-Dproxy.http.port=9002"},
			env: map[string]string{"PROXY_PORT": "9003"}, want: 9003, wantSrc: "env PROXY_PORT"},
		{name: "empty env counts as unset", args: []string{"--config", file},
			env: map[string]string{"PROXY_PORT": ""}, want: 9001, wantSrc: "file " + file},
		{name: "flag over everything", args: []string{"--config", file, "-Dproxy.http.port=9002", "--port", "9004"},
			env: map[string]string{"PROXY_PORT": "9003"}, want: 9004, wantSrc: "flag --port"},
		{name: "short flag", args: []string{"-p", "9005"}, env: map[string]string{"PROXY_PORT": "9003"}, want: 9005, wantSrc: "flag --port"},
		{name: "flag with =", args: []string{"--port=9006"}, want: 9006, wantSrc: "flag --port"},
		{name: "flag before -D in the arguments still wins", args: []string{"--port=9006", "-Dproxy.http.port=9002"}, want: 9006, wantSrc: "flag --port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := loadProxy(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Config.HTTP.Port; got != tt.want {
				t.Errorf("proxy.http.port = %d, want %d", got, tt.want)
			}
			if got := l.Sources["proxy.http.port"]; got != tt.wantSrc {
				t.Errorf("source = %q, want %q", got, tt.wantSrc)
			}
		})
	}
}

func TestAgentPrecedenceOnNestedKey(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "agent.conf", "agent.http.maxConcurrentClients = 2\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{name: "default", want: 4},
		{name: "file", args: []string{"-c", file}, want: 2},
		{name: "-D", args: []string{"-c", file, "-Dagent.http.maxConcurrentClients=3"}, want: 3},
		{name: "env", args: []string{"-c", file, "-Dagent.http.maxConcurrentClients=3"}, env: map[string]string{"MAX_CONCURRENT_CLIENTS": "6"}, want: 6},
		{name: "flag", args: []string{"-c", file, "--max_concurrent_clients", "7"}, env: map[string]string{"MAX_CONCURRENT_CLIENTS": "6"}, want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := loadAgent(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Config.HTTP.MaxConcurrentClients; got != tt.want {
				t.Errorf("agent.http.maxConcurrentClients = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestFormatsLoadTheSameValues(t *testing.T) {
	t.Parallel()
	wantProxy := DefaultProxy()
	wantProxy.HTTP.Port = 9090
	wantProxy.Admin.Enabled = true
	wantProxy.Admin.Port = 9092
	wantProxy.Internal.ScrapeRequestTimeoutSecs = 30
	wantProxy.LogLevel = "debug"
	wantAgent := DefaultAgent()
	wantAgent.Name = "agent-1"
	wantAgent.Proxy.Hostname = "proxy.example.com:50440"
	wantAgent.HTTP.MaxConcurrentClients = 3
	wantAgent.Consolidated = true
	wantAgent.PathConfigs = []PathConfig{
		{Name: "App 1", Path: "app1_metrics", URL: "http://app1:9100/metrics", Labels: map[string]string{"team": "a"}},
		{Name: "App 2", Path: "app2_metrics", URL: "http://app2:9100/metrics", Labels: map[string]string{"team": "b"}},
	}
	for _, ext := range []string{"yaml", "toml", "json", "conf"} {
		t.Run(ext, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join("testdata", "full."+ext)
			p, err := loadProxy(t, []string{"--config", file}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Config, wantProxy) {
				t.Errorf("proxy config from %s:\n got %+v\nwant %+v", file, p.Config, wantProxy)
			}
			a, err := loadAgent(t, []string{"--config", file}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Config, wantAgent) {
				t.Errorf("agent config from %s:\n got %+v\nwant %+v", file, a.Config, wantAgent)
			}
		})
	}
}

func TestHOCONInTheKotlinStyle(t *testing.T) {
	t.Parallel()
	file := filepath.Join("testdata", "anchor-main.conf")
	tests := []struct {
		name        string
		env         map[string]string
		wantName    string
		wantTimeout int
	}{
		{name: "fallbacks unset", env: map[string]string{"TEST_TARGET_HOST": "localhost"}, wantName: "default-name", wantTimeout: 15},
		{name: "fallbacks from the environment",
			env:      map[string]string{"TEST_AGENT_NAME": "from-env", "TEST_TARGET_HOST": "target.local", "TEST_SCRAPE_TIMEOUT": "7"},
			wantName: "from-env", wantTimeout: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := loadAgent(t, []string{"--config", file}, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			c := a.Config
			if c.Name != tt.wantName || c.ScrapeTimeoutSecs != tt.wantTimeout {
				t.Errorf("name, scrapeTimeoutSecs = %q, %d; want %q, %d", c.Name, c.ScrapeTimeoutSecs, tt.wantName, tt.wantTimeout)
			}
			if c.Proxy.Port != 50440 {
				t.Errorf("agent.proxy.port from the included file = %d, want 50440", c.Proxy.Port)
			}
			if len(c.PathConfigs) != 2 || c.PathConfigs[0].Labels["key2"] != "value2" {
				t.Fatalf("pathConfigs = %+v", c.PathConfigs)
			}
			if want := "http://" + tt.env["TEST_TARGET_HOST"] + ":8083/metrics"; c.PathConfigs[1].URL != want {
				t.Errorf("url with substitution = %q, want %q", c.PathConfigs[1].URL, want)
			}
			p, err := loadProxy(t, []string{"--config", file}, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Config.Admin.DebugEnabled || !p.Config.Metrics.Enabled || p.Config.Agent.Port != 50440 {
				t.Errorf("proxy section not read: %+v", p.Config)
			}
		})
	}
}

func TestKotlinReferenceFileLoads(t *testing.T) {
	t.Parallel()
	// Every key of the Kotlin programs' reference configuration is
	// accepted, so that their users' files load unchanged.
	file := filepath.Join("testdata", "kotlin-reference.conf")
	if _, err := loadProxy(t, []string{"--config", file}, nil); err != nil {
		t.Errorf("proxy: %v", err)
	}
	if _, err := loadAgent(t, []string{"--config", file}, nil); err != nil {
		t.Errorf("agent: %v", err)
	}
}

func TestConfigFromURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/proxy.yaml":
			_, _ = w.Write([]byte("proxy:\n  http:\n    port: 9191\n"))
		case "/typed":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"proxy": {"http": {"port": 9192}}}`))
		case "/untyped":
			_, _ = w.Write([]byte("proxy.http.port = 9193\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		path    string
		want    int
		wantErr string
	}{
		{name: "format from extension", path: "/proxy.yaml", want: 9191},
		{name: "format from content type", path: "/typed", want: 9192},
		{name: "HOCON by default", path: "/untyped", want: 9193},
		{name: "not found", path: "/missing.yaml?token=s3cret", wantErr: "cannot fetch config URL " + srv.URL + "/missing.yaml?REDACTED: HTTP status 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, _, err := LoadProxy(t.Context(), Input{Args: []string{"--config", srv.URL + tt.path}, HTTPClient: srv.Client()})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Config.HTTP.Port != tt.want {
				t.Errorf("port = %d, want %d", l.Config.HTTP.Port, tt.want)
			}
		})
	}
}

func TestRelativePathsResolveAgainstTheConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "certs", "ca.pem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "agent.yaml")
	body := "agent:\n  tls:\n    trustCertCollectionFilePath: certs/ca.pem\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := loadAgent(t, []string{"--config", file, "--cert", "flag/relative.pem", "--key", "k.pem"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.Config.TLS.TrustCertCollectionFilePath, filepath.Join(dir, "certs", "ca.pem"); got != want {
		t.Errorf("trust path from the file = %q, want %q", got, want)
	}
	if got := a.Config.TLS.CertChainFilePath; got != "flag/relative.pem" {
		t.Errorf("cert path from a flag = %q, want it as given", got)
	}
}

func TestActions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want Action
	}{
		{[]string{"--usage"}, ActionUsage}, {[]string{"-u"}, ActionUsage}, {[]string{"-h"}, ActionUsage},
		{[]string{"--help"}, ActionUsage}, {[]string{"--version"}, ActionVersion}, {[]string{"-v"}, ActionVersion},
		{[]string{"--port", "not-checked-when-printing-usage", "-u"}, ActionUsage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			l, got, err := LoadProxy(t.Context(), Input{Args: tt.args})
			if err != nil || got != tt.want || l != nil {
				t.Errorf("LoadProxy(%q) = %v, %v, %v; want nil, %v, nil", tt.args, l, got, err, tt.want)
			}
		})
	}
}

func TestAllProblemsAtOnceOnOneLine(t *testing.T) {
	t.Parallel()
	_, err := loadProxy(t, []string{"--port", "-5", "--admin_port", "x", "--log_level", "all", "-Dproxy.nope=1"}, map[string]string{"METRICS_PORT": "70000"})
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if len(cerr.Problems) != 5 {
		t.Errorf("%d problems, want 5: %q", len(cerr.Problems), cerr.Problems)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "invalid configuration (5 problems): ") {
		t.Errorf("message is not one line with a count: %q", msg)
	}
}

func TestExampleConfigsLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../../examples/config/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			if _, err := loadProxy(t, []string{"--config", f}, nil); err != nil {
				t.Errorf("proxy: %v", err)
			}
			if _, err := loadAgent(t, []string{"--config", f}, nil); err != nil {
				t.Errorf("agent: %v", err)
			}
		})
	}
}
