package webconfig

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/promproxy/promproxy/internal/testcerts"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Written aside and renamed, as deployments do, so that a reader never
	// sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestValidateNamesWhatIsWrong(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	tlsOK := "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown top-level key", "basic_auth_user:\n  a: b\n", "basic_auth_user"},
		{"misspelt TLS key", "tls_server_config:\n  certfile: server.crt\n", "certfile"},
		{"not YAML", "tls_server_config: [", "yaml"},
		{"duplicate key", "rate_limit:\n  burst: 1\n  burst: 2\n", "burst"},
		{"TLS settings without certificate", "tls_server_config:\n  min_version: TLS13\n", "without a certificate"},
		{"certificate without key", "tls_server_config:\n  cert_file: server.crt\n", "no key"},
		{"key without certificate", "tls_server_config:\n  key_file: server.key\n", "no certificate"},
		{"cert and cert_file", tlsOK + "  cert: x\n", "both cert and cert_file"},
		{"missing certificate file", "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", "nope.crt"},
		{"key of another certificate", "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n", "does not belong"},
		{"expired certificate", "tls_server_config:\n  cert_file: expired-server.crt\n  key_file: expired-server.key\n", "expired"},
		{"unknown client auth", tlsOK + "  client_auth_type: Always\n", `client_auth_type: unknown "Always"`},
		{"client CA without client auth", tlsOK + "  client_ca_file: ca.crt\n", "client_auth_type does not ask"},
		{"SANs without client auth", tlsOK + "  client_allowed_sans: [a]\n", "client_allowed_sans is set"},
		{"client CA file not PEM", tlsOK + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.key\n", "no PEM CERTIFICATE"},
		{"unknown cipher suite", tlsOK + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", `cipher_suites: unknown or insecure suite "TLS_RSA_WITH_RC4_128_SHA"`},
		{"unknown curve", tlsOK + "  curve_preferences: [P256]\n", `curve_preferences: unknown curve "P256"`},
		{"unknown TLS version", tlsOK + "  min_version: TLS1.2\n", `min_version: unknown TLS version "TLS1.2"`},
		{"min above max", tlsOK + "  min_version: TLS13\n  max_version: TLS12\n", "min_version TLS13 is above max_version TLS12"},
		{"header not settable", "http_server_config:\n  headers:\n    Server: x\n", `"Server" cannot be set`},
		{"header value not allowed", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n", `X-Frame-Options: "allow" is not one of`},
		{"http2 not a bool", "http_server_config:\n  http2: maybe\n", "maybe"},
		{"burst zero", "rate_limit:\n  interval: 1s\n", "rate_limit.burst"},
		{"negative interval", "rate_limit:\n  interval: -1s\n  burst: 1\n", "must not be negative"},
		{"interval not a duration", "rate_limit:\n  interval: often\n  burst: 1\n", "often"},
		{"plain password", "basic_auth_users:\n  ops: secret\n", "basic_auth_users.ops: not a bcrypt hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(s.Dir, strings.ReplaceAll(tc.name, " ", "-")+".yml")
			writeFile(t, path, tc.doc)
			err := Validate(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate(%q) = %v, want an error naming %q", tc.doc, err, tc.want)
			}
		})
	}
}

func TestValidateAcceptsTheFormat(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	cert, err := os.ReadFile(s.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(s.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	for _, tc := range []struct{ name, doc string }{
		{"empty", ""},
		{"only a comment", "# nothing yet\n"},
		{"everything", "tls_server_config:\n  cert_file: server.crt\n  key_file: " + s.ServerKey + "\n" +
			"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [agent.promproxy.test]\n" +
			"  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n" +
			"  curve_preferences: [X25519, CurveP256]\n  min_version: TLS12\n  max_version: TLS13\n  prefer_server_cipher_suites: true\n" +
			"http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\n" +
			"rate_limit:\n  interval: 100ms\n  burst: 10\n" +
			"basic_auth_users:\n  ops: " + hashOf(t, "pw") + "\n"},
		{"inline certificate and key", "tls_server_config:\n  cert: |\n" + indent(cert) + "\n  key: |\n" + indent(key) + "\n"},
		{"older client auth name", "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireClientCert\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(s.Dir, strings.ReplaceAll(tc.name, " ", "-")+".yml")
			writeFile(t, path, tc.doc)
			if err := Validate(path); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	s := testcerts.Temp(t)
	path := filepath.Join(s.Dir, "web.yml")
	writeFile(t, path, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
	st, err := load(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !st.http2 || st.limiter != nil || len(st.users) != 0 {
		t.Errorf("http2 %v, limiter %v, users %d: want HTTP/2 on, no limit, no users", st.http2, st.limiter, len(st.users))
	}
	cfg := st.tls.config(nil)
	if cfg.MinVersion != tls.VersionTLS12 || cfg.MaxVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("versions %x..%x, client auth %v: want TLS 1.2..1.3 and no client certificate", cfg.MinVersion, cfg.MaxVersion, cfg.ClientAuth)
	}
}
