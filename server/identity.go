package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
)

// Identity is one named agent identity (an entry of the anchor's
// proxy.auth list). An agent proves it holds an identity with the
// identity's token, with a client certificate the identity is bound to, or
// with both; the identity then limits which paths the agent may register,
// and no agent of another identity can take those paths over.
type Identity struct {
	// Name names the identity in logs, metrics and refusal reasons.
	Name string
	// Token is the identity's pre-shared agent token, sent by the agent
	// in the agent-token header. It may be empty when the identity is
	// bound to a client certificate instead.
	Token string
	// Paths are the path globs the identity may register: "*" matches any
	// run of characters, "?" exactly one, everything else itself. An empty
	// list allows every path.
	Paths []string
	// CertSubject binds the identity to client certificates whose subject
	// is this distinguished name in RFC 2253 form ("CN=agent-a,O=Team A")
	// or whose common name is this value. Requires mutual TLS.
	CertSubject string
	// CertSANs binds the identity to client certificates carrying one of
	// these subject alternative names (DNS name, URI, e-mail address or IP
	// address). Requires mutual TLS.
	CertSANs []string
}

// identity is a validated Identity. Agents of the same identity share the
// same *identity; a nil *identity is the single anonymous identity of a
// proxy without tokens or identities.
type identity struct {
	name        string
	hasToken    bool
	tokenHash   [sha256.Size]byte
	globs       []string
	certSubject string
	certSANs    []string
	// shared marks the allow-all identity of Options.AgentToken.
	shared bool
}

func newIdentity(id Identity) *identity {
	x := &identity{
		name:        id.Name,
		globs:       slices.Clone(id.Paths),
		certSubject: id.CertSubject,
		certSANs:    slices.Clone(id.CertSANs),
	}
	if id.Token != "" {
		x.hasToken, x.tokenHash = true, sha256.Sum256([]byte(id.Token))
	}
	return x
}

// label names the identity for logs.
func (id *identity) label() string {
	if id == nil {
		return "anonymous"
	}
	return id.name
}

// tokenMatches compares in constant time. Hashing first makes the
// comparison independent of the presented token's length too.
func (id *identity) tokenMatches(h [sha256.Size]byte) bool {
	return id.hasToken && subtle.ConstantTimeCompare(id.tokenHash[:], h[:]) == 1
}

func (id *identity) certBound() bool { return id.certSubject != "" || len(id.certSANs) > 0 }

// certMatches reports whether leaf belongs to the identity: every binding
// the identity has must hold.
func (id *identity) certMatches(leaf *x509.Certificate) bool {
	if leaf == nil {
		return false
	}
	if id.certSubject != "" && leaf.Subject.String() != id.certSubject && leaf.Subject.CommonName != id.certSubject {
		return false
	}
	if len(id.certSANs) > 0 && !slices.ContainsFunc(certSANs(leaf), func(s string) bool { return slices.Contains(id.certSANs, s) }) {
		return false
	}
	return true
}

func certSANs(c *x509.Certificate) []string {
	sans := slices.Clone(c.DNSNames)
	sans = append(sans, c.EmailAddresses...)
	for _, u := range c.URIs {
		sans = append(sans, u.String())
	}
	for _, ip := range c.IPAddresses {
		sans = append(sans, ip.String())
	}
	return sans
}

// refusePath returns why the identity may not register path, or "".
func (id *identity) refusePath(path string) string {
	if id == nil || len(id.globs) == 0 {
		return ""
	}
	for _, g := range id.globs {
		if globMatch(g, path) {
			return ""
		}
	}
	return fmt.Sprintf("identity %q is not authorized for path %q: it may register only paths matching %s",
		id.name, path, strings.Join(id.globs, ", "))
}

// globMatch matches name against a pattern of literal characters, "*"
// (any run, including none) and "?" (exactly one character). It is the
// classic linear-time wildcard match that remembers the last star.
func globMatch(pattern, name string) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
