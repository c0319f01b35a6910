package webconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/time/rate"

	"github.com/promproxy/promproxy/internal/tlsconfig"
)

// file is the document as written; every key the format defines is here,
// so that a misspelt one is an error instead of a setting silently lost.
type file struct {
	TLS struct {
		Cert             string   `yaml:"cert"`
		Key              string   `yaml:"key"`
		ClientCA         string   `yaml:"client_ca"`
		CertFile         string   `yaml:"cert_file"`
		KeyFile          string   `yaml:"key_file"`
		ClientAuthType   string   `yaml:"client_auth_type"`
		ClientCAFile     string   `yaml:"client_ca_file"`
		CipherSuites     []string `yaml:"cipher_suites"`
		CurvePreferences []string `yaml:"curve_preferences"`
		MinVersion       string   `yaml:"min_version"`
		MaxVersion       string   `yaml:"max_version"`
		// Accepted so that existing files load; crypto/tls has chosen the
		// cipher suite itself since Go 1.17.
		PreferServerCipherSuites bool     `yaml:"prefer_server_cipher_suites"`
		ClientAllowedSANs        []string `yaml:"client_allowed_sans"`
	} `yaml:"tls_server_config"`
	HTTP struct {
		HTTP2   *bool             `yaml:"http2"`
		Headers map[string]string `yaml:"headers"`
	} `yaml:"http_server_config"`
	RateLimit struct {
		Burst    int           `yaml:"burst"`
		Interval time.Duration `yaml:"interval"`
	} `yaml:"rate_limit"`
	Users map[string]string `yaml:"basic_auth_users"`
}

// settings is a loaded file: names resolved, files found, hashes checked.
type settings struct {
	tls     *tlsSettings // nil: plain HTTP
	http2   bool
	headers map[string]string
	limiter *rate.Limiter // nil: no limit
	users   map[string][]byte
}

type tlsSettings struct {
	certFile, keyFile string
	certPEM, keyPEM   []byte // inline, when the files are not named
	caFile            string
	caPEM             []byte
	clientAuth        tls.ClientAuthType
	ciphers           []uint16
	curves            []tls.CurveID
	minVersion        uint16
	maxVersion        uint16
	allowedSANs       []string

	// Set by open: the current certificate, and the current client CAs
	// (nil when none are configured).
	cert      func() *tls.Certificate
	clientCAs func() *x509.CertPool
}

var clientAuthTypes = map[string]tls.ClientAuthType{
	"":                           tls.NoClientCert,
	"NoClientCert":               tls.NoClientCert,
	"RequestClientCert":          tls.RequestClientCert,
	"RequireAnyClientCert":       tls.RequireAnyClientCert,
	"RequireClientCert":          tls.RequireAnyClientCert, // an older name, still in use
	"VerifyClientCertIfGiven":    tls.VerifyClientCertIfGiven,
	"RequireAndVerifyClientCert": tls.RequireAndVerifyClientCert,
}

var tlsVersions = map[string]uint16{
	"TLS10": tls.VersionTLS10,
	"TLS11": tls.VersionTLS11,
	"TLS12": tls.VersionTLS12,
	"TLS13": tls.VersionTLS13,
}

var curveNames = map[string]tls.CurveID{
	"CurveP256": tls.CurveP256,
	"CurveP384": tls.CurveP384,
	"CurveP521": tls.CurveP521,
	"X25519":    tls.X25519,
}

// headerValues lists the response headers the file may set; a header with
// values may only take one of them. The set is the format's own: it keeps
// every Prometheus component's file interchangeable.
var headerValues = map[string][]string{
	"Strict-Transport-Security": nil,
	"X-Content-Type-Options":    {"nosniff"},
	"X-Frame-Options":           {"deny", "sameorigin"},
	"X-XSS-Protection":          nil,
	"Content-Security-Policy":   nil,
}

// Validate loads the file at path and everything it names, and reports the
// first thing wrong with it. An empty path is valid: no web configuration.
func Validate(path string) error {
	if path == "" {
		return nil
	}
	_, err := load(path, slog.New(slog.DiscardHandler))
	return err
}

// load reads the file at path and opens the certificates it names; log
// receives the reloads of certificate files.
func load(path string, log *slog.Logger) (*settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := parse(data, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	if s.tls != nil {
		if err := s.tls.open(log); err != nil {
			return nil, fmt.Errorf("tls_server_config: %w", err)
		}
	}
	return s, nil
}

// parse checks the document; dir is where relative file names start.
func parse(data []byte, dir string) (*settings, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	s := &settings{http2: f.HTTP.HTTP2 == nil || *f.HTTP.HTTP2, headers: f.HTTP.Headers}
	var err error
	if s.tls, err = parseTLS(&f, dir); err != nil {
		return nil, fmt.Errorf("tls_server_config: %w", err)
	}
	for name, v := range f.HTTP.Headers {
		allowed, ok := headerValues[name]
		if !ok {
			return nil, fmt.Errorf("http_server_config.headers: %q cannot be set (settable: %s)", name, strings.Join(slices.Sorted(maps.Keys(headerValues)), ", "))
		}
		if len(allowed) > 0 && !slices.Contains(allowed, v) {
			return nil, fmt.Errorf("http_server_config.headers.%s: %q is not one of %q", name, v, allowed)
		}
	}
	switch rl := f.RateLimit; {
	case rl.Interval < 0 || rl.Burst < 0:
		return nil, fmt.Errorf("rate_limit: interval %s and burst %d must not be negative", rl.Interval, rl.Burst)
	case rl.Interval > 0 && rl.Burst == 0:
		return nil, fmt.Errorf("rate_limit.burst: must be at least 1 when an interval is set, or every request is refused")
	case rl.Interval > 0:
		s.limiter = rate.NewLimiter(rate.Every(rl.Interval), rl.Burst)
	}
	if len(f.Users) > 0 {
		s.users = make(map[string][]byte, len(f.Users))
		for user, hash := range f.Users {
			if _, err := bcrypt.Cost([]byte(hash)); err != nil {
				return nil, fmt.Errorf("basic_auth_users.%s: not a bcrypt hash (make one with htpasswd -nBC 10 \"\" | tr -d ':\\n'): %w", user, err)
			}
			s.users[user] = []byte(hash)
		}
	}
	return s, nil
}

func parseTLS(f *file, dir string) (*tlsSettings, error) {
	c := &f.TLS
	if c.CertFile == "" && c.Cert == "" && c.KeyFile == "" && c.Key == "" &&
		c.ClientCAFile == "" && c.ClientCA == "" && c.ClientAuthType == "" {
		if len(c.CipherSuites)+len(c.CurvePreferences)+len(c.ClientAllowedSANs) > 0 || c.MinVersion != "" || c.MaxVersion != "" {
			return nil, errors.New("TLS settings without a certificate: set cert_file and key_file")
		}
		return nil, nil
	}
	t := &tlsSettings{
		certFile: join(dir, c.CertFile), keyFile: join(dir, c.KeyFile), caFile: join(dir, c.ClientCAFile),
		certPEM: []byte(c.Cert), keyPEM: []byte(c.Key), caPEM: []byte(c.ClientCA),
		minVersion: tls.VersionTLS12, maxVersion: tls.VersionTLS13,
		allowedSANs: c.ClientAllowedSANs,
	}
	switch {
	case c.CertFile != "" && c.Cert != "":
		return nil, errors.New("both cert and cert_file are set: use one")
	case c.KeyFile != "" && c.Key != "":
		return nil, errors.New("both key and key_file are set: use one")
	case c.ClientCAFile != "" && c.ClientCA != "":
		return nil, errors.New("both client_ca and client_ca_file are set: use one")
	case c.CertFile == "" && c.Cert == "":
		return nil, errors.New("no certificate: set cert_file (or cert)")
	case c.KeyFile == "" && c.Key == "":
		return nil, errors.New("no key: set key_file (or key)")
	}
	var ok bool
	if t.clientAuth, ok = clientAuthTypes[c.ClientAuthType]; !ok {
		return nil, fmt.Errorf("client_auth_type: unknown %q (one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)", c.ClientAuthType)
	}
	hasCA := c.ClientCAFile != "" || c.ClientCA != ""
	if hasCA && t.clientAuth == tls.NoClientCert {
		return nil, errors.New("client CAs are set but client_auth_type does not ask for a client certificate: set client_auth_type: RequireAndVerifyClientCert")
	}
	if len(t.allowedSANs) > 0 && t.clientAuth == tls.NoClientCert {
		return nil, errors.New("client_allowed_sans is set but client_auth_type does not ask for a client certificate: set client_auth_type: RequireAndVerifyClientCert")
	}
	for _, name := range c.CipherSuites {
		id, ok := cipherSuite(name)
		if !ok {
			return nil, fmt.Errorf("cipher_suites: unknown or insecure suite %q (names as in Go's crypto/tls, such as TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)", name)
		}
		t.ciphers = append(t.ciphers, id)
	}
	for _, name := range c.CurvePreferences {
		id, ok := curveNames[name]
		if !ok {
			return nil, fmt.Errorf("curve_preferences: unknown curve %q (one of CurveP256, CurveP384, CurveP521, X25519)", name)
		}
		t.curves = append(t.curves, id)
	}
	for _, v := range []struct {
		key, name string
		dst       *uint16
	}{{"min_version", c.MinVersion, &t.minVersion}, {"max_version", c.MaxVersion, &t.maxVersion}} {
		if v.name == "" {
			continue
		}
		if *v.dst, ok = tlsVersions[v.name]; !ok {
			return nil, fmt.Errorf("%s: unknown TLS version %q (one of TLS10, TLS11, TLS12, TLS13)", v.key, v.name)
		}
	}
	if t.minVersion > t.maxVersion {
		return nil, fmt.Errorf("min_version %s is above max_version %s", c.MinVersion, c.MaxVersion)
	}
	return t, nil
}

func cipherSuite(name string) (uint16, bool) {
	for _, cs := range tls.CipherSuites() {
		if cs.Name == name {
			return cs.ID, true
		}
	}
	return 0, false
}

// join resolves a file name written in the configuration file against the
// file's own directory, as Prometheus does.
func join(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// open loads the certificate and the client CAs. Those named by files
// follow them as on the agent port (tlsconfig): read on each handshake,
// parsed again only when they changed, the last good ones kept when a
// replacement is broken. Those given inline are fixed until the web
// configuration file itself changes, and so is a pair given half inline.
func (t *tlsSettings) open(log *slog.Logger) error {
	if t.certFile != "" && t.keyFile != "" {
		kp, err := tlsconfig.NewKeyPair(t.certFile, t.keyFile, log)
		if err != nil {
			return err
		}
		t.cert = kp.Get
	} else {
		certPEM, certName, err := readOr(t.certFile, t.certPEM, "cert")
		if err != nil {
			return err
		}
		keyPEM, keyName, err := readOr(t.keyFile, t.keyPEM, "key")
		if err != nil {
			return err
		}
		cert, err := tlsconfig.LoadKeyPair(certName, keyName, certPEM, keyPEM)
		if err != nil {
			return err
		}
		t.cert = func() *tls.Certificate { return cert }
	}
	switch {
	case t.caFile != "":
		pool, err := tlsconfig.NewCAPool(t.caFile, log)
		if err != nil {
			return err
		}
		t.clientCAs = pool.Get
	case len(t.caPEM) > 0:
		pool, err := tlsconfig.LoadPool("client_ca", t.caPEM)
		if err != nil {
			return err
		}
		t.clientCAs = func() *x509.CertPool { return pool }
	}
	return nil
}

// config is the TLS configuration of one handshake.
func (t *tlsSettings) config(nextProtos []string) *tls.Config {
	cfg := &tls.Config{
		Certificates:     []tls.Certificate{*t.cert()},
		MinVersion:       t.minVersion,
		MaxVersion:       t.maxVersion,
		CipherSuites:     t.ciphers,
		CurvePreferences: t.curves,
		ClientAuth:       t.clientAuth,
		NextProtos:       nextProtos,
	}
	if t.clientCAs != nil {
		cfg.ClientCAs = t.clientCAs()
	}
	if len(t.allowedSANs) > 0 {
		cfg.VerifyPeerCertificate = t.checkSANs
	}
	return cfg
}

func readOr(path string, inline []byte, key string) ([]byte, string, error) {
	if path == "" {
		return inline, key, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, path, err
	}
	return b, path, nil
}

// checkSANs admits a client whose certificate names one of the allowed
// subject alternative names. It runs after crypto/tls has verified the
// chain, when client_auth_type asks for that.
func (t *tlsSettings) checkSANs(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return errors.New("no client certificate, and client_allowed_sans requires one")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	sans := slices.Concat(leaf.DNSNames, leaf.EmailAddresses)
	for _, ip := range leaf.IPAddresses {
		sans = append(sans, ip.String())
	}
	for _, u := range leaf.URIs {
		sans = append(sans, u.String())
	}
	for _, san := range sans {
		if slices.Contains(t.allowedSANs, san) {
			return nil
		}
	}
	return fmt.Errorf("client certificate %q has none of the allowed SANs %q (it has %q)", leaf.Subject.String(), t.allowedSANs, sans)
}
