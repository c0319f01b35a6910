package config

import (
	"errors"
	"strings"
	"testing"
)

// problems runs a load expected to fail and returns its problems.
func problems(t *testing.T, agent bool, args []string, env map[string]string) []string {
	t.Helper()
	var err error
	if agent {
		_, err = loadAgent(t, args, env)
	} else {
		_, err = loadProxy(t, args, env)
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want an invalid configuration", err)
	}
	return cerr.Problems
}

func TestValidationMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		agent bool
		args  []string
		env   map[string]string
		file  string // YAML body, written to a file passed with --config
		want  string
	}{
		{name: "negative port", args: []string{"--port", "-1"},
			want: `proxy.http.port = -1: must be a port between 1 and 65535, or 0 for any free port (flag --port)`},
		{name: "port too large", env: map[string]string{"ADMIN_PORT": "65536"},
			want: `proxy.admin.port = 65536: must be a port between 1 and 65535, or 0 for any free port (env ADMIN_PORT)`},
		{name: "not a number", args: []string{"--agent_port", "fifty"},
			want: `proxy.agent.port = "fifty": not a whole number (flag --agent_port)`},
		{name: "not a boolean", env: map[string]string{"ADMIN_ENABLED": "maybe"},
			want: `proxy.admin.enabled = "maybe": not true or false (env ADMIN_ENABLED)`},
		{name: "duration zero", args: []string{"-Dproxy.internal.scrapeRequestTimeoutSecs=0"},
			want: `proxy.internal.scrapeRequestTimeoutSecs = 0: must be greater than 0 (-Dproxy.internal.scrapeRequestTimeoutSecs)`},
		{name: "size zero", args: []string{"-Dproxy.internal.maxUnzippedContentSizeMBytes=0"},
			want: `proxy.internal.maxUnzippedContentSizeMBytes = 0: must be greater than 0 (-Dproxy.internal.maxUnzippedContentSizeMBytes)`},
		{name: "negative threshold", args: []string{"-Dproxy.internal.scrapeRequestMapUnhealthySize=-1"},
			want: `proxy.internal.scrapeRequestMapUnhealthySize = -1: must not be negative (-Dproxy.internal.scrapeRequestMapUnhealthySize)`},
		{name: "keepalive", env: map[string]string{"KEEPALIVE_TIME_SECS": "0"},
			want: `proxy.grpc.keepAliveTimeSecs = 0: must be greater than 0, or -1 for the default (env KEEPALIVE_TIME_SECS)`},
		{name: "log level all", args: []string{"--log_level", "all"},
			want: `proxy.logLevel = "all": "all" is not supported: use "trace" for the most detail (flag --log_level)`},
		{name: "log level unknown", env: map[string]string{"PROXY_LOG_LEVEL": "verbose"},
			want: `proxy.logLevel = "verbose": must be one of trace, debug, info, warn, error, off (env PROXY_LOG_LEVEL)`},
		{name: "log format", args: []string{"--log_format", "xml"},
			want: `proxy.logFormat = "xml": must be one of text, json (flag --log_format)`},
		{name: "consolidated mode", args: []string{"--consolidated_mode", "both"},
			want: `proxy.consolidatedMode = "both": must be one of merge, failover (flag --consolidated_mode)`},
		{name: "path segment", args: []string{"--sd_path", "a/b"},
			want: `proxy.service.discovery.path = "a/b": must be a single URL path segment of letters, digits and _ - . ~ : (flag --sd_path)`},
		{name: "target prefix", args: []string{"--sd_target_prefix", "localhost:8080"},
			want: `proxy.service.discovery.targetPrefix = "localhost:8080": must be an absolute http:// or https:// URL (flag --sd_target_prefix)`},
		{name: "cert without key", args: []string{"--cert", "c.pem"},
			want: `proxy.tls.certChainFilePath = "c.pem": proxy.tls.certChainFilePath (--cert) and proxy.tls.privateKeyFilePath (--key) must be set together (flag --cert)`},
		{name: "trust without cert", args: []string{"--trust", "ca.pem"},
			want: `proxy.tls.trustCertCollectionFilePath = "ca.pem": mutual TLS (--trust) needs the proxy's own certificate and key (--cert, --key); without them the proxy would start without TLS (flag --trust)`},
		{name: "identity without name", file: "proxy:\n  auth:\n    - token: t1\n",
			want: `proxy.auth[0].name = "": every identity needs a name (file FILE)`},
		{name: "identity with neither token nor certificate", file: "proxy:\n  auth:\n    - {name: team-a, paths: [\"a_*\"]}\n",
			want: `proxy.auth[0] = "team-a": identity "team-a" has neither a token nor a certificate binding: it needs a token, a certSubject or certSANs (mutual TLS), or both (file FILE)`},
		{name: "certificate identity without mutual TLS", file: "proxy:\n  auth:\n    - {name: team-b, certSubject: \"CN=agent-b\"}\n",
			want: `proxy.auth[0].certSubject = "CN=agent-b": identity "team-b" is bound to a client certificate, which needs mutual TLS: set proxy.tls.trustCertCollectionFilePath (--trust) with proxy.tls.certChainFilePath and privateKeyFilePath (file FILE)`},
		{name: "SAN identity without mutual TLS", file: "proxy:\n  auth:\n    - {name: team-c, token: t1, certSANs: [agent.example]}\n",
			want: `proxy.auth[0].certSANs = "[agent.example]": identity "team-c" is bound to a client certificate, which needs mutual TLS: set proxy.tls.trustCertCollectionFilePath (--trust) with proxy.tls.certChainFilePath and privateKeyFilePath (file FILE)`},
		{name: "empty SAN", file: "proxy:\n  tls: {certChainFilePath: c.pem, privateKeyFilePath: k.pem, trustCertCollectionFilePath: ca.pem}\n  auth:\n    - {name: team-c, certSANs: [\"\"]}\n",
			want: `proxy.auth[0].certSANs[0] = "": must be a DNS name, URI, e-mail address or IP address (file FILE)`},
		{name: "identity token with white space", file: "proxy:\n  auth:\n    - {name: a, token: \"t1 \"}\n",
			want: `proxy.auth[0].token = <redacted>: a token must not start or end with white space (file FILE)`},
		{name: "identity token equal to the shared token", env: map[string]string{"AGENT_TOKEN": "t1"}, file: "proxy:\n  auth:\n    - {name: a, token: t1}\n",
			want: `proxy.auth[0].token = <redacted>: the same token as proxy.agentToken; tokens must be unique (file FILE)`},
		{name: "shared token not printable", env: map[string]string{"AGENT_TOKEN": "t\x01"},
			want: `proxy.agentToken = <redacted>: a token must be printable ASCII, to travel in an HTTP header (env AGENT_TOKEN)`},
		{name: "duplicate identity", file: "proxy:\n  auth:\n    - {name: a, token: t1}\n    - {name: a, token: t2}\n",
			want: `proxy.auth[1].name = "a": identity names must be unique (file FILE)`},
		{name: "duplicate token", file: "proxy:\n  auth:\n    - {name: a, token: t1}\n    - {name: b, token: t1}\n",
			want: `proxy.auth[1].token = <redacted>: the same token as proxy.auth[0]; tokens must be unique (file FILE)`},
		{name: "bad glob", file: "proxy:\n  auth:\n    - {name: a, token: t1, paths: [\"team/a\"]}\n",
			want: `proxy.auth[0].paths[0] = "team/a": must be a path glob of letters, digits, _ - . ~ : and the wildcards * and ? (file FILE)`},
		{name: "ports collide", args: []string{"--metrics", "--metrics_port", "8080"},
			want: `proxy.metrics.port = 8080: proxy.http.port already uses this port (flag --metrics_port)`},
		{name: "auth from -D", args: []string{"-Dproxy.auth=x"},
			want: `-Dproxy.auth: proxy.auth is a list and can only be set in a config file`},
		{name: "other program's -D", args: []string{"-Dagent.name=x"},
			want: `-Dagent.name: agent.* keys belong to prometheus-agent; prometheus-proxy reads only proxy.* keys`},
		{name: "section given a value", file: "proxy:\n  http: 8080\n",
			want: `proxy.http = 8080: must be a section of keys, not a single value (file FILE)`},
		{name: "value given a section", file: "proxy:\n  logLevel:\n    level: info\n",
			want: `proxy.logLevel = {...}: must be a single value, not a section (file FILE)`},

		{name: "agent chunk range", agent: true, args: []string{"--chunk", "0"},
			want: `agent.chunkContentSizeKbs = 0: must be between 1 and 4096 (flag --chunk)`},
		{name: "agent negative retries", agent: true, env: map[string]string{"SCRAPE_MAX_RETRIES": "-1"},
			want: `agent.scrapeMaxRetries = -1: must not be negative (env SCRAPE_MAX_RETRIES)`},
		{name: "agent proxy list", agent: true, args: []string{"--proxy", "a:1,,b"},
			want: `agent.proxy.hostname = "a:1,,b": must list one or more proxies as host, host:port or https://host:port, separated by commas (flag --proxy)`},
		{name: "agent proxy URL with a path", agent: true, args: []string{"--proxy", "http://a/x"},
			want: `agent.proxy.hostname = "http://a/x": "http://a/x" is not host, host:port or https://host:port (flag --proxy)`},
		{name: "agent key without cert", agent: true, args: []string{"--key", "k.pem"},
			want: `agent.tls.certChainFilePath = "": agent.tls.certChainFilePath (--cert) and agent.tls.privateKeyFilePath (--key) must be set together (default)`},
		{name: "agent path missing", agent: true, file: "agent:\n  pathConfigs:\n    - {name: a, url: 'http://t/metrics'}\n",
			want: `agent.pathConfigs[0].path = "": every path config needs a path (file FILE)`},
		{name: "agent path with a slash", agent: true, file: "agent:\n  pathConfigs:\n    - {path: a/b, url: 'http://t/metrics'}\n",
			want: `agent.pathConfigs[0].path = "a/b": must be a single URL segment of letters, digits and _ - . ~ : (no /) (file FILE)`},
		{name: "agent path twice", agent: true, file: "agent:\n  pathConfigs:\n    - {path: a, url: 'http://t/metrics'}\n    - {path: a, url: 'http://u/metrics'}\n",
			want: `agent.pathConfigs[1].path = "a": agent.pathConfigs[0] already serves this path (file FILE)`},
		{name: "agent url", agent: true, file: "agent:\n  pathConfigs:\n    - {path: a, url: 'ftp://user:pw@t/m?k=v'}\n",
			want: `agent.pathConfigs[0].url = "ftp://REDACTED@t/m?REDACTED": must be an absolute http:// or https:// URL (file FILE)`},
		{name: "agent labels", agent: true, file: "agent:\n  pathConfigs:\n    - {path: a, url: 'http://t/m', labels: 'not json'}\n",
			want: `agent.pathConfigs[0].labels = "not json": not a map nor a JSON object in a string (file FILE)`},
		{name: "agent filter path", agent: true, file: "agent:\n  filters:\n    - {metricNameDeny: ['go_.*']}\n",
			want: `agent.filters[0].path = "": every filter needs the path it applies to (file FILE)`},
		{name: "agent filter regex", agent: true, file: "agent:\n  filters:\n    - {path: a, metricNameDeny: ['go_(']}\n",
			want: "agent.filters[0].metricNameDeny[0] = \"go_(\": not a valid regular expression: error parsing regexp: missing closing ): `^(?:go_()$` (file FILE)"},
		{name: "agent list given a value", agent: true, file: "agent:\n  pathConfigs: app1\n",
			want: `agent.pathConfigs = "app1": must be a list, not a single value (file FILE)`},
		{name: "agent discovery without file", agent: true, args: []string{"-Dagent.discovery.enabled=true"},
			want: `agent.discovery.file.path = "": required when agent.discovery.enabled is true (default)`},
		{name: "agent listeners collide", agent: true, args: []string{"--admin", "--metrics", "--metrics_port", "8093"},
			want: `agent.metrics.port = 8093: agent.admin.port already uses this port (flag --metrics_port)`},
		{name: "agent token with white space", agent: true, args: []string{"--agent_token", " s3cret"},
			want: `agent.agentToken = <redacted>: a token must not start or end with white space (flag --agent_token)`},
		{name: "agent cleartext proxy with TLS", agent: true, args: []string{"--proxy", "http://p:50051", "--trust", "ca.pem"},
			want: `agent.proxy.hostname = "http://p:50051": http://p:50051 is cleartext, but agent.tls.* turns TLS on: use https:// or a bare host:port (flag --proxy)`},
		{name: "agent https proxy without TLS", agent: true, args: []string{"--proxy", "https://p"},
			want: `agent.proxy.hostname = "https://p": https://p:50051 needs TLS settings: agent.tls.trustCertCollectionFilePath (--trust) with the CA of the proxy's certificate, and for mutual TLS --cert and --key (flag --proxy)`},
		{name: "agent secret never shown", agent: true, file: "agent:\n  agentToken: [a, b]\n",
			want: `agent.agentToken = <redacted>: must be a single value, not a list (file FILE)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			want := tt.want
			if tt.file != "" {
				f := writeFile(t, "c.yaml", tt.file)
				args = append([]string{"--config", f}, args...)
				want = strings.ReplaceAll(want, "FILE", f)
			}
			got := problems(t, tt.agent, args, tt.env)
			if len(got) != 1 || got[0] != want {
				t.Errorf("problems:\n got %q\nwant [%q]", got, want)
			}
		})
	}
}

func TestArgumentErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown flag", args: []string{"--prot", "1"}, want: "unknown flag --prot; did you mean --port? (see --usage)"},
		{name: "unknown flag far from any", args: []string{"--zzzzzz"}, want: "unknown flag --zzzzzz (see --usage)"},
		{name: "stray argument", args: []string{"proxy.conf"}, want: `unexpected argument "proxy.conf"; see --usage`},
		{name: "boolean given separately", args: []string{"--admin", "false"}, want: `unexpected argument "false" (a boolean flag takes its value as --flag=false); see --usage`},
		{name: "malformed -D", args: []string{"-Dproxy.http.port"}, want: "-Dproxy.http.port: expected -Dkey=value"},
		{name: "missing file", args: []string{"--config", "/nonexistent/p.yaml"}, want: "cannot read config file: open /nonexistent/p.yaml: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadProxy(t, tt.args, nil)
			if err == nil || !strings.HasSuffix(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to end with %q", err, tt.want)
			}
		})
	}
}

func TestUnsupportedAndBrokenFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, body, want string
	}{
		{name: "properties", file: "p.properties", body: "proxy.http.port=1", want: "p.properties: Java .properties files are not supported; use YAML, TOML, JSON or HOCON (.conf)"},
		{name: "broken YAML", file: "p.yaml", body: "proxy: [", want: "p.yaml is not valid YAML: "},
		{name: "broken JSON", file: "p.json", body: "{", want: "p.json is not valid JSON: "},
		{name: "broken TOML", file: "p.toml", body: "[proxy", want: "p.toml is not valid TOML: "},
		{name: "broken HOCON", file: "p.conf", body: "proxy {", want: "p.conf is not valid HOCON: "},
		{name: "HOCON list at the top", file: "p.conf", body: "[1, 2]", want: "p.conf is not valid HOCON: the file's top level must be an object, not a list"},
		{name: "required substitution missing", file: "p.conf", body: "proxy.logLevel = ${NO_SUCH_VARIABLE_FOR_TEST}", want: "could not resolve substitution"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadProxy(t, []string{"--config", writeFile(t, tt.file, tt.body)}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestUnknownKeysInEveryFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, body string
		agent            bool
		want             string
	}{
		{name: "YAML", file: "p.yaml", body: "proxy:\n  http:\n    prot: 1\n",
			want: `unknown key "proxy.http.prot" (file FILE); did you mean "proxy.http.port"?`},
		{name: "TOML", file: "p.toml", body: "[proxy.http]\nprot = 1\n",
			want: `unknown key "proxy.http.prot" (file FILE); did you mean "proxy.http.port"?`},
		{name: "JSON", file: "p.json", body: `{"proxy": {"http": {"prot": 1}}}`,
			want: `unknown key "proxy.http.prot" (file FILE); did you mean "proxy.http.port"?`},
		{name: "HOCON", file: "p.conf", body: "proxy.http.prot = 1\n",
			want: `unknown key "proxy.http.prot" (file FILE); did you mean "proxy.http.port"?`},
		{name: "case", file: "p.conf", body: "proxy.logleve = info\n",
			want: `unknown key "proxy.logleve" (file FILE); did you mean "proxy.logLevel"?`},
		{name: "wrong section", file: "a.yaml", agent: true, body: "agent:\n  maxConcurrentClients: 2\n",
			want: `unknown key "agent.maxConcurrentClients" (file FILE); did you mean "agent.http.maxConcurrentClients"?`},
		{name: "inside a list", file: "a.json", agent: true, body: `{"agent": {"pathConfigs": [{"path": "a", "url": "http://t/m"}, {"path": "b", "url": "http://t/m", "urll": "http://t/m"}]}}`,
			want: `unknown key "agent.pathConfigs[1].urll" (file FILE); did you mean "agent.pathConfigs[1].url"?`},
		{name: "top level", file: "p.toml", body: "[proxxy]\nlogLevel = \"info\"\n",
			want: `unknown key "proxxy" (file FILE)`},
		{name: "no near miss", file: "p.yaml", body: "proxy:\n  completelyDifferent: 1\n",
			want: `unknown key "proxy.completelyDifferent" (file FILE)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := writeFile(t, tt.file, tt.body)
			got := problems(t, tt.agent, []string{"--config", f}, nil)
			if want := strings.ReplaceAll(tt.want, "FILE", f); len(got) != 1 || got[0] != want {
				t.Errorf("problems:\n got %q\nwant [%q]", got, want)
			}
		})
	}
	t.Run("-D", func(t *testing.T) {
		t.Parallel()
		got := problems(t, true, []string{"-Dagent.http.maxConcurentClients=5"}, nil)
		want := `unknown key "agent.http.maxConcurentClients" (-Dagent.http.maxConcurentClients); did you mean "agent.http.maxConcurrentClients"?`
		if len(got) != 1 || got[0] != want {
			t.Errorf("problems:\n got %q\nwant [%q]", got, want)
		}
	})
}

func TestSharedFileSectionsAreIndependent(t *testing.T) {
	t.Parallel()
	// The agent section is wrong, but the proxy does not read it.
	f := writeFile(t, "shared.yaml", "proxy:\n  http:\n    port: 9999\nagent:\n  nonsense: 1\n")
	p, err := loadProxy(t, []string{"--config", f}, nil)
	if err != nil || p.Config.HTTP.Port != 9999 {
		t.Fatalf("proxy: %v", err)
	}
	got := problems(t, true, []string{"--config", f}, nil)
	if want := `unknown key "agent.nonsense" (file ` + f + `)`; len(got) != 1 || got[0] != want {
		t.Errorf("agent problems = %q, want [%q]", got, want)
	}
}
