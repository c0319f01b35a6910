package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"

	"connectrpc.com/connect"

	"github.com/promproxy/promproxy/internal/redact"
	"github.com/promproxy/promproxy/internal/tlsconfig"
	"github.com/promproxy/promproxy/internal/transport"
)

// AgentTokenHeader is the request header that carries Options.AgentToken,
// the Kotlin agent's gRPC metadata key.
const AgentTokenHeader = "Agent-Token"

// proxyTLSEnabled reports whether the proxy channel uses TLS: it does as
// soon as any TLS setting is given. An https:// address alone is not
// enough, so that TLS is always a deliberate choice with a known trust
// source.
func (o *Options) proxyTLSEnabled() bool {
	return o.TLSConfig != nil || o.TLSCertFile != "" || o.TLSKeyFile != "" || o.TLSTrustFile != "" || o.TLSOverrideAuthority != ""
}

// validateSecurity checks the TLS and token options. The token's value is
// never part of a message.
func (o *Options) validateSecurity() []error {
	var errs []error
	bad := func(field, v, want string) {
		errs = append(errs, fmt.Errorf("client: option %s = %s: %s", field, v, want))
	}
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		bad("TLSCertFile/TLSKeyFile", fmt.Sprintf("%q/%q", o.TLSCertFile, o.TLSKeyFile), "the certificate and its key are given together")
	}
	if o.TLSConfig != nil && (o.TLSCertFile != "" || o.TLSKeyFile != "" || o.TLSTrustFile != "") {
		bad("TLSConfig", "set", "give either TLSConfig or the TLS files, not both")
	}
	if o.TargetTLSConfig != nil && (o.TargetTrustFile != "" || o.TargetInsecureSkipVerify) {
		bad("TargetTLSConfig", "set", "give either TargetTLSConfig or TargetTrustFile/TargetInsecureSkipVerify, not both")
	}
	if o.proxyTLSEnabled() {
		for i, u := range o.ProxyURLs {
			if strings.HasPrefix(strings.ToLower(u), "http://") {
				bad(fmt.Sprintf("ProxyURLs[%d]", i), fmt.Sprintf("%q", redact.URL(u)), "TLS is configured, so the address must be https:// or a bare host:port")
			}
		}
	}
	if t := o.AgentToken; t != "" {
		if strings.TrimSpace(t) != t || strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			bad("AgentToken", "<redacted>", "a token must be printable ASCII without surrounding white space, to travel in an HTTP header")
		}
	}
	return errs
}

// newProxyTransport returns the round tripper for the proxy channel: HTTP/2
// only, TLS per proxy address when enabled, and the agent token and
// authority override added to every request.
//
// certAsked is set when a proxy asks for a client certificate that the
// agent does not have. A proxy that requires one closes the connection
// after the handshake, and when that happens before the first request is
// sent, net/http reports only that the connection could not be
// established; the flag lets the agent say why.
func newProxyTransport(o *Options, bases []string, log *slog.Logger, certAsked *atomic.Bool) (http.RoundTripper, error) {
	pt := &proxyTransport{token: o.AgentToken, authority: o.TLSOverrideAuthority, byHost: map[string]*http.Transport{}}
	if !o.proxyTLSEnabled() {
		pt.shared = transport.NewClientTransport(nil, o.Keepalive)
		if o.AgentToken != "" {
			log.Warn("the agent token is sent to the proxy in cleartext: configure TLS so it cannot be read on the way")
		}
		return pt, nil
	}
	var files *tlsconfig.Client
	if o.TLSConfig == nil {
		var err error
		files, err = tlsconfig.NewClient(tlsconfig.Files{CertFile: o.TLSCertFile, KeyFile: o.TLSKeyFile, CAFile: o.TLSTrustFile},
			o.Logger.With("component", "agent_tls"))
		if err != nil {
			return nil, fmt.Errorf("client: proxy TLS: %w", err)
		}
	}
	// One transport per proxy, each checking that proxy's name: the name
	// a certificate must carry differs from one proxy to the next.
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil {
			return nil, err
		}
		if _, ok := pt.byHost[u.Host]; ok {
			continue
		}
		name := u.Hostname()
		if o.TLSOverrideAuthority != "" {
			name = o.TLSOverrideAuthority
		}
		var cfg *tls.Config
		if files != nil {
			cfg = files.Config(name)
		} else {
			cfg = o.TLSConfig.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName = name
			}
		}
		if cfg.GetClientCertificate == nil && len(cfg.Certificates) == 0 {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				certAsked.Store(true)
				return &tls.Certificate{}, nil // an empty one sends none
			}
		}
		pt.byHost[u.Host] = transport.NewClientTransport(cfg, o.Keepalive)
	}
	return pt, nil
}

// proxyTransport routes each request to the transport of its proxy.
type proxyTransport struct {
	shared    *http.Transport // h2c: one transport for every proxy
	byHost    map[string]*http.Transport
	token     string
	authority string
}

// RoundTrip adds the token and authority to a copy of the request, as
// RoundTrippers must not change the caller's.
func (t *proxyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tr := t.shared
	if tr == nil {
		tr = t.byHost[r.URL.Host]
	}
	if tr == nil {
		return nil, fmt.Errorf("no transport for proxy %s", r.URL.Host)
	}
	if t.token != "" || t.authority != "" {
		r = r.Clone(r.Context())
		if t.token != "" {
			r.Header.Set(AgentTokenHeader, t.token)
		}
		if t.authority != "" {
			r.Host = t.authority
		}
	}
	return tr.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of every transport.
func (t *proxyTransport) CloseIdleConnections() {
	if t.shared != nil {
		t.shared.CloseIdleConnections()
	}
	for _, tr := range t.byHost {
		tr.CloseIdleConnections()
	}
}

// targetTLSConfig returns how https targets are verified: the caller's
// TargetTLSConfig, the system's CAs plus TargetTrustFile, or nothing at all
// with TargetInsecureSkipVerify.
func targetTLSConfig(o *Options, log *slog.Logger) (*tls.Config, error) {
	switch {
	case o.TargetTLSConfig != nil:
		return o.TargetTLSConfig, nil
	case o.TargetInsecureSkipVerify:
		if o.TargetTrustFile != "" {
			log.Warn("TargetTrustFile is ignored: TargetInsecureSkipVerify turns off verification of https targets", "trust_file", o.TargetTrustFile)
		}
		log.Warn("https targets are not verified (trust_all_x509): anyone between the agent and a target can impersonate it; use a trust file instead outside of development")
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil //nolint:gosec // explicitly requested, warned above
	case o.TargetTrustFile != "":
		pool, err := tlsconfig.SystemPoolWith(o.TargetTrustFile)
		if err != nil {
			return nil, fmt.Errorf("client: option TargetTrustFile: %w", err)
		}
		return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
	}
	return nil, nil
}

// describeConnectError explains why a session with the proxy failed, in
// words an operator can act on. It never includes secrets.
func describeConnectError(err error, tlsOn, certAsked bool) string {
	msg := redact.Error(err)
	if hint := connectHint(err, tlsOn, certAsked); hint != "" {
		return msg + " (" + hint + ")"
	}
	return msg
}

func connectHint(err error, tlsOn, certAsked bool) string {
	// crypto/tls reports the peer's alerts as a net.OpError around an
	// unexported type, so the alert is recognised by its text.
	msg := err.Error()
	var record tls.RecordHeaderError
	switch {
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		return "the proxy did not accept the agent token: check AgentToken"
	case connect.CodeOf(err) == connect.CodePermissionDenied:
		return "the proxy refused this agent's identity: check its token and client certificate"
	case strings.Contains(msg, "tls: unknown certificate authority"):
		return "the proxy does not trust the agent's client certificate: it must be signed by a CA in the proxy's trust file"
	case strings.Contains(msg, "tls: expired certificate"):
		return "the proxy says the agent's client certificate has expired"
	case strings.Contains(msg, "tls: certificate required"):
		return "the proxy requires a client certificate (mutual TLS): set the agent's certificate and key"
	case certAsked && strings.Contains(msg, "client conn could not be established"):
		return "the proxy asked for a client certificate, which the agent does not have, and closed the connection: it requires a client certificate (mutual TLS); set the agent's certificate and key"
	case strings.Contains(msg, "tls: no application protocol"):
		return "the proxy does not offer HTTP/2 on this port"
	case strings.Contains(msg, "remote error: tls:"):
		return "the proxy refused the TLS handshake"
	case errors.As(err, &record), strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return "the proxy did not answer with TLS: it may serve plaintext h2c on this port"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if tlsOn {
			return "the proxy closed the connection during the TLS handshake: it may serve plaintext h2c on this port"
		}
		return "the proxy closed the connection at once: if it serves TLS, connect with https:// and a trust file"
	}
	return ""
}
