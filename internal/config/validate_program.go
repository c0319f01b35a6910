package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/promproxy/promproxy/internal/pathspec"
)

// validateProxy checks what the tags cannot: combinations of keys and the
// entries of lists.
func validateProxy(p *Proxy, c *checker) {
	t := p.TLS
	if (t.CertChainFilePath == "") != (t.PrivateKeyFilePath == "") {
		c.badf("proxy.tls.certChainFilePath", t.CertChainFilePath, "proxy.tls.certChainFilePath (--cert) and proxy.tls.privateKeyFilePath (--key) must be set together")
	}
	if t.TrustCertCollectionFilePath != "" && t.CertChainFilePath == "" {
		c.badf("proxy.tls.trustCertCollectionFilePath", t.TrustCertCollectionFilePath,
			"mutual TLS (--trust) needs the proxy's own certificate and key (--cert, --key); without them the proxy would start without TLS")
	}
	validateIdentities(p, c)
	ports := [][2]any{{"proxy.http.port", p.HTTP.Port}, {"proxy.agent.port", p.Agent.Port}}
	if p.Admin.Enabled {
		ports = append(ports, [2]any{"proxy.admin.port", p.Admin.Port})
	}
	if p.Metrics.Enabled {
		ports = append(ports, [2]any{"proxy.metrics.port", p.Metrics.Port})
	}
	if p.UI.Enabled {
		ports = append(ports, [2]any{"proxy.ui.port", p.UI.Port})
	}
	c.distinctPorts(ports)
}

// validateIdentities checks proxy.auth: every identity is named once and
// has a way to be proven (a token, a client certificate binding, or both),
// and no token picks two identities. Token values are never shown.
func validateIdentities(p *Proxy, c *checker) {
	mtls := p.TLS.TrustCertCollectionFilePath != ""
	names := map[string]bool{}
	tokens := map[string]string{}
	if p.AgentToken != "" {
		tokens[p.AgentToken] = "proxy.agentToken"
	}
	for i, id := range p.Auth {
		key := fmt.Sprintf("proxy.auth[%d]", i)
		if id.Name == "" {
			c.badf(key+".name", id.Name, "every identity needs a name")
		} else if names[id.Name] {
			c.badf(key+".name", id.Name, "identity names must be unique")
		}
		names[id.Name] = true
		bound := id.CertSubject != "" || len(id.CertSANs) > 0
		if id.Token == "" && !bound {
			c.badf(key, id.Name, "identity %q has neither a token nor a certificate binding: it needs a token, a certSubject or certSANs (mutual TLS), or both", id.Name)
		}
		if id.Token != "" {
			if msg := checkToken(id.Token); msg != "" {
				c.badf(key+".token", id.Token, "%s", msg)
			}
			if other, dup := tokens[id.Token]; dup {
				c.badf(key+".token", id.Token, "the same token as %s; tokens must be unique", other)
			} else {
				tokens[id.Token] = key
			}
		}
		if bound && !mtls {
			field, v := key+".certSubject", any(id.CertSubject)
			if id.CertSubject == "" {
				field, v = key+".certSANs", fmt.Sprint(id.CertSANs)
			}
			c.badf(field, v, "identity %q is bound to a client certificate, which needs mutual TLS: set proxy.tls.trustCertCollectionFilePath (--trust) with proxy.tls.certChainFilePath and privateKeyFilePath", id.Name)
		}
		for j, san := range id.CertSANs {
			if strings.TrimSpace(san) == "" {
				c.badf(fmt.Sprintf("%s.certSANs[%d]", key, j), san, "must be a DNS name, URI, e-mail address or IP address")
			}
		}
		for j, g := range id.Paths {
			if pathspec.ValidateGlob(g) != nil {
				c.badf(fmt.Sprintf("%s.paths[%d]", key, j), g, "must be a path glob of letters, digits, _ - . ~ : and the wildcards * and ?")
			}
		}
	}
}

// validateAgent checks the agent's combinations of keys and its lists.
func validateAgent(a *Agent, c *checker) {
	t := a.TLS
	if (t.CertChainFilePath == "") != (t.PrivateKeyFilePath == "") {
		c.badf("agent.tls.certChainFilePath", t.CertChainFilePath, "agent.tls.certChainFilePath (--cert) and agent.tls.privateKeyFilePath (--key) must be set together")
	}
	validateProxyScheme(a, c)
	seen := map[string]int{}
	for i, pc := range a.PathConfigs {
		key := fmt.Sprintf("agent.pathConfigs[%d]", i)
		switch {
		case pc.Path == "":
			c.badf(key+".path", pc.Path, "every path config needs a path")
		case pathspec.Validate(pc.Path) != nil:
			c.badf(key+".path", pc.Path, "must be a single URL segment of letters, digits and _ - . ~ : (no /)")
		default:
			if j, dup := seen[pc.Path]; dup {
				c.badf(key+".path", pc.Path, "agent.pathConfigs[%d] already serves this path", j)
			}
			seen[pc.Path] = i
		}
		if !isHTTPURL(pc.URL) {
			c.badf(key+".url", redact(pc.URL), "must be an absolute http:// or https:// URL")
		}
	}
	for i, f := range a.Filters {
		key := fmt.Sprintf("agent.filters[%d]", i)
		if f.Path == "" {
			c.badf(key+".path", f.Path, "every filter needs the path it applies to")
		}
		for name, list := range map[string][]string{"metricNameAllow": f.MetricNameAllow, "metricNameDeny": f.MetricNameDeny} {
			for j, re := range list {
				if _, err := regexp.Compile("^(?:" + re + ")$"); err != nil {
					c.badf(fmt.Sprintf("%s.%s[%d]", key, name, j), re, "not a valid regular expression: %v", err)
				}
			}
		}
	}
	if a.Discovery.Enabled && a.Discovery.File.Path == "" {
		c.badf("agent.discovery.file.path", "", "required when agent.discovery.enabled is true")
	}
	var ports [][2]any
	if a.Admin.Enabled {
		ports = append(ports, [2]any{"agent.admin.port", a.Admin.Port})
	}
	if a.Metrics.Enabled {
		ports = append(ports, [2]any{"agent.metrics.port", a.Metrics.Port})
	}
	c.distinctPorts(ports)
}

// validateProxyScheme checks that the scheme of every proxy address agrees
// with the TLS settings: any agent.tls key turns TLS on, so an http://
// address would contradict it, and an https:// address without any of
// them would leave the trust source to chance.
func validateProxyScheme(a *Agent, c *checker) {
	t := a.TLS
	tlsOn := t.CertChainFilePath != "" || t.PrivateKeyFilePath != "" || t.TrustCertCollectionFilePath != "" || t.OverrideAuthority != ""
	addrs, err := ProxyAddresses(a.Proxy.Hostname, a.Proxy.Port)
	if err != nil {
		return // reported by the proxylist check
	}
	for _, addr := range addrs {
		switch {
		case tlsOn && strings.HasPrefix(addr, "http://"):
			c.badf("agent.proxy.hostname", a.Proxy.Hostname, "%s is cleartext, but agent.tls.* turns TLS on: use https:// or a bare host:port", addr)
			return
		case !tlsOn && strings.HasPrefix(addr, "https://"):
			c.badf("agent.proxy.hostname", a.Proxy.Hostname, "%s needs TLS settings: agent.tls.trustCertCollectionFilePath (--trust) with the CA of the proxy's certificate, and for mutual TLS --cert and --key", addr)
			return
		}
	}
}

// redact hides a URL's userinfo and query, which may hold credentials.
func redact(s string) string {
	if i := strings.Index(s, "@"); i > 0 && strings.Contains(s[:i], "://") {
		s = s[:strings.Index(s, "://")+3] + "REDACTED" + s[i:]
	}
	if i := strings.Index(s, "?"); i >= 0 {
		s = s[:i] + "?REDACTED"
	}
	return s
}
