package cli

import (
	"fmt"

	"github.com/promproxy/promproxy/internal/config"
)

// WIRING: TLS, agent tokens and per-agent identities are decoded and
// validated by internal/config, but the server and client options that
// would carry them do not exist yet. Until they are wired here, a
// configuration that asks for them is refused rather than run without the
// protection the operator asked for.

// proxySecurity maps the proxy's security settings (proxy.tls.*,
// proxy.agentToken, proxy.auth) onto server.Options.
func proxySecurity(cfg *config.Proxy) error {
	switch {
	case cfg.TLS.CertChainFilePath != "" || cfg.TLS.TrustCertCollectionFilePath != "":
		return unwired("proxy.tls.* (--cert, --key, --trust)")
	case cfg.AgentToken != "":
		return unwired("proxy.agentToken (--agent_token)")
	case len(cfg.Auth) > 0:
		return unwired("proxy.auth")
	}
	return nil
}

// agentSecurity maps the agent's security settings (agent.tls.*,
// agent.agentToken, agent.http trust settings) onto client.Options.
func agentSecurity(cfg *config.Agent) error {
	switch {
	case cfg.TLS.CertChainFilePath != "" || cfg.TLS.TrustCertCollectionFilePath != "" || cfg.TLS.OverrideAuthority != "":
		return unwired("agent.tls.* (--cert, --key, --trust, --override)")
	case cfg.AgentToken != "":
		return unwired("agent.agentToken (--agent_token)")
	case cfg.HTTP.EnableTrustAllX509Certificates:
		return unwired("agent.http.enableTrustAllX509Certificates (--trust_all_x509)")
	case cfg.HTTP.TrustStorePath != "":
		return unwired("agent.http.trustStorePath (--https_truststore)")
	}
	return nil
}

func unwired(what string) error {
	return fmt.Errorf("%s: not supported by this build yet; refusing to start without the protection it asks for", what)
}
