package cli

import (
	"github.com/promproxy/promproxy/internal/config"
	"github.com/promproxy/promproxy/server"
)

// proxySecurity maps the proxy's security settings onto o: TLS on the
// agent listener (proxy.tls.*), the shared agent token, the per-agent
// identities (proxy.auth) and the web configuration of the listeners
// Prometheus and operators use. The config loader has already checked
// their combinations; server.New checks the files.
func proxySecurity(cfg *config.Proxy, o *server.Options) {
	o.TLSCertFile = cfg.TLS.CertChainFilePath
	o.TLSKeyFile = cfg.TLS.PrivateKeyFilePath
	o.TLSTrustFile = cfg.TLS.TrustCertCollectionFilePath
	o.AgentToken = cfg.AgentToken
	o.WebConfigFile = cfg.WebConfigFile
	o.Identities = nil
	for _, id := range cfg.Auth {
		o.Identities = append(o.Identities, server.Identity{
			Name:        id.Name,
			Token:       id.Token,
			Paths:       id.Paths,
			CertSubject: id.CertSubject,
			CertSANs:    id.CertSANs,
		})
	}
}
