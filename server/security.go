package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"

	"github.com/promproxy/promproxy/internal/pathspec"
	"github.com/promproxy/promproxy/internal/tlsconfig"
	"github.com/promproxy/promproxy/internal/webconfig"
)

// agentTLSConfig returns the agent listener's TLS configuration, or nil
// when the channel is h2c. ALPN offers h2 for sessions and http/1.1 for the
// unary debugging RPCs an operator calls with curl, as on the h2c port.
func agentTLSConfig(o *Options, log *slog.Logger) (*tls.Config, error) {
	if o.TLSCertFile == "" && o.TLSKeyFile == "" && o.TLSTrustFile == "" {
		return nil, nil
	}
	cfg, err := tlsconfig.NewServer(tlsconfig.Files{CertFile: o.TLSCertFile, KeyFile: o.TLSKeyFile, CAFile: o.TLSTrustFile},
		[]string{"h2", "http/1.1"}, log.With("component", "agent_tls"))
	if err != nil {
		return nil, fmt.Errorf("server: agent listener TLS: %w", err)
	}
	return cfg, nil
}

// serve runs one listener: TLS on the agent listener when configured, the
// web configuration file (TLS, client certificates, basic auth) on the
// listeners Prometheus and operators use, plain HTTP otherwise.
func (p *Proxy) serve(s *namedServer) error {
	switch {
	case s == p.agentSrv && p.agentTLS:
		return s.srv.ServeTLS(s.ln, "", "")
	case s != p.agentSrv && p.opts.WebConfigFile != "":
		return webconfig.Serve(s.ln, s.srv, p.opts.WebConfigFile, p.log.With("listener", s.name))
	default:
		return s.srv.Serve(s.ln)
	}
}

// setupSecurity is the part of New that concerns who may talk to the
// proxy: the server error logs that report refused TLS handshakes, and the
// startup warnings about an open or cleartext agent port.
func (p *Proxy) setupSecurity() error {
	for _, s := range p.servers {
		// A refused handshake is reported by net/http through ErrorLog,
		// naming the peer; on the agent port it is worth a warning.
		level := slog.LevelInfo
		if s == p.agentSrv {
			level = slog.LevelWarn
		}
		s.srv.ErrorLog = slog.NewLogLogger(p.log.With("listener", s.name).Handler(), level)
	}
	o := p.opts
	tlsOn := p.agentTLS
	mtls := o.TLSTrustFile != ""
	switch {
	case o.AgentToken == "" && len(o.Identities) == 0 && !mtls:
		p.log.Warn("the agent port accepts any agent: anyone who can reach it can register paths and serve metrics for them; set an agent token, identities or mutual TLS")
	case (o.AgentToken != "" || len(o.Identities) > 0) && !tlsOn:
		p.log.Warn("agent tokens travel in cleartext on the agent port: enable TLS so they cannot be read on the way")
	}
	if o.AgentToken != "" && len(o.Identities) > 0 {
		p.log.Warn("the shared agent token is active as an allow-all identity alongside the per-agent identities; remove it once every agent has its own identity",
			"identities", len(o.Identities))
	}
	if len(o.Identities) > 0 {
		names := make([]string, len(o.Identities))
		for i, id := range o.Identities {
			names[i] = id.Name
		}
		p.log.Info("agent identities enabled", "identities", strings.Join(names, ","))
	}
	return nil
}

// hasAgent reports whether id names a live session.
func (r *registry) hasAgent(id string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.agents[id]
	return ok
}

// validateSecurity checks the TLS, token and identity options. Token
// values are never part of a message.
func (o *Options) validateSecurity() []error {
	var errs []error
	bad := func(field, v, want string) {
		errs = append(errs, fmt.Errorf("server: option %s = %s: %s", field, v, want))
	}
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	if (o.TLSCertFile == "") != (o.TLSKeyFile == "") {
		bad("TLSCertFile/TLSKeyFile", q(o.TLSCertFile)+"/"+q(o.TLSKeyFile), "the certificate and its key are given together")
	}
	if o.TLSTrustFile != "" && o.TLSCertFile == "" {
		bad("TLSTrustFile", q(o.TLSTrustFile), "mutual TLS needs TLSCertFile and TLSKeyFile too: the proxy cannot ask agents for certificates without serving TLS itself")
	}
	if err := checkToken(o.AgentToken); err != nil {
		bad("AgentToken", "<redacted>", err.Error())
	}
	names := map[string]bool{}
	tokens := map[string]string{}
	if o.AgentToken != "" {
		tokens[o.AgentToken] = "AgentToken"
	}
	for i, id := range o.Identities {
		f := fmt.Sprintf("Identities[%d]", i)
		switch {
		case id.Name == "":
			bad(f+".Name", `""`, "every identity needs a name")
		case names[id.Name]:
			bad(f+".Name", q(id.Name), "identity names must be unique")
		}
		names[id.Name] = true
		bound := id.CertSubject != "" || len(id.CertSANs) > 0
		if id.Token == "" && !bound {
			bad(f, q(id.Name), "an identity needs a Token, a CertSubject or CertSANs")
		}
		if bound && o.TLSTrustFile == "" {
			bad(f, q(id.Name), "binding an identity to a client certificate needs mutual TLS (TLSTrustFile)")
		}
		if id.Token != "" {
			if err := checkToken(id.Token); err != nil {
				bad(f+".Token", "<redacted>", err.Error())
			}
			if other, dup := tokens[id.Token]; dup {
				bad(f+".Token", "<redacted>", "the same token as "+other+": a token must pick exactly one identity")
			}
			tokens[id.Token] = f
		}
		for j, g := range id.Paths {
			if err := pathspec.ValidateGlob(g); err != nil {
				bad(fmt.Sprintf("%s.Paths[%d]", f, j), q(g), err.Error())
			}
		}
		for j, san := range id.CertSANs {
			if san == "" {
				bad(fmt.Sprintf("%s.CertSANs[%d]", f, j), `""`, "empty name")
			}
		}
	}
	if o.WebConfigFile != "" {
		if err := webconfig.Validate(o.WebConfigFile); err != nil {
			bad("WebConfigFile", q(o.WebConfigFile), err.Error())
		}
	}
	return errs
}

// checkToken accepts tokens that can travel in an HTTP header unchanged.
func checkToken(t string) error {
	if t == "" {
		return nil
	}
	if strings.TrimSpace(t) != t {
		return fmt.Errorf("a token must not start or end with white space")
	}
	for i := 0; i < len(t); i++ {
		if t[i] < 0x20 || t[i] > 0x7e {
			return fmt.Errorf("a token must be printable ASCII, to travel in an HTTP header")
		}
	}
	return nil
}
