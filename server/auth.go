package server

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Request headers of the agent channel that carry credentials or claims.
// The names are the Kotlin agent's gRPC metadata keys.
const (
	// AgentTokenHeader carries the agent's pre-shared token.
	AgentTokenHeader = "Agent-Token"
	// agentIDHeader is how the Kotlin agent names its session. Here the
	// proxy assigns an id to each session and never takes one from the
	// agent, so a request that names one is refused: it is either an
	// attempt to act as another connection or to reuse an ended session.
	agentIDHeader = "Agent-Id"
)

// Reasons an agent request or registration is refused, the values of
// proxy_agent_auth_refusals_total{reason}.
const (
	refusedMissingToken      = "missing_token"
	refusedWrongToken        = "wrong_token"
	refusedCertRequired      = "certificate_required"
	refusedCertMismatch      = "certificate_mismatch"
	refusedOtherAgentID      = "agent_id_of_other_connection"
	refusedEndedSession      = "ended_session"
	refusedPathNotAuthorized = "path_not_authorized"
	refusedPathOwned         = "path_owned_by_other_identity"
)

// authenticator decides who an agent is before any of its messages is
// read. It is an HTTP middleware rather than a Connect interceptor so that
// the refusal happens before the stream is handed to the session code:
// an unauthenticated peer cannot even reach RegisterAgent.
type authenticator struct {
	log *slog.Logger
	// identities holds the configured identities and, last, the allow-all
	// identity of the shared AgentToken.
	identities []*identity
	// required is false on an open port: no token and no identity is
	// configured (mutual TLS alone may still guard the port).
	required bool
	refusals *prometheus.CounterVec
	// sessionLive reports whether an agent id belongs to a live session.
	sessionLive func(id string) bool
}

func newAuthenticator(o *Options, reg prometheus.Registerer, log *slog.Logger, sessionLive func(string) bool) *authenticator {
	a := &authenticator{
		log:         log.With("component", "agent_auth"),
		sessionLive: sessionLive,
		refusals: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_agent_auth_refusals_total",
			Help: "Agent requests and path registrations refused for authentication or authorization, by reason.",
		}, []string{"reason"}),
	}
	for _, id := range o.Identities {
		a.identities = append(a.identities, newIdentity(id))
	}
	if o.AgentToken != "" {
		shared := newIdentity(Identity{Name: "agent_token", Token: o.AgentToken})
		shared.shared = true
		a.identities = append(a.identities, shared)
	}
	a.required = len(a.identities) > 0
	for _, r := range []string{refusedMissingToken, refusedWrongToken, refusedPathNotAuthorized, refusedPathOwned} {
		a.refusals.WithLabelValues(r)
	}
	return a
}

// refusal is a request the authenticator turned away.
type refusal struct {
	reason string
	err    *connect.Error
}

func refuse(reason string, code connect.Code, format string, args ...any) *refusal {
	return &refusal{reason: reason, err: connect.NewError(code, fmt.Errorf(format, args...))}
}

// authenticate resolves the request's identity. The token is never part
// of any message: only the identity's name is.
func (a *authenticator) authenticate(r *http.Request) (*identity, *refusal) {
	var leaf *x509.Certificate
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		leaf = r.TLS.VerifiedChains[0][0]
	}
	if !a.required {
		return nil, nil
	}
	if token := r.Header.Get(AgentTokenHeader); token != "" {
		h := sha256.Sum256([]byte(token))
		var found *identity
		// Every identity is compared, so the time taken does not depend
		// on which one, if any, matched.
		for _, id := range a.identities {
			if id.tokenMatches(h) && found == nil {
				found = id
			}
		}
		if found == nil {
			return nil, refuse(refusedWrongToken, connect.CodeUnauthenticated, "agent token not recognized")
		}
		if found.certBound() {
			if leaf == nil {
				return nil, refuse(refusedCertRequired, connect.CodePermissionDenied,
					"identity %q is bound to a client certificate and this connection presented none", found.name)
			}
			if !found.certMatches(leaf) {
				return nil, refuse(refusedCertMismatch, connect.CodePermissionDenied,
					"client certificate %q does not belong to identity %q", leaf.Subject.String(), found.name)
			}
		}
		return found, nil
	}
	if leaf != nil {
		for _, id := range a.identities {
			if !id.hasToken && id.certBound() && id.certMatches(leaf) {
				return id, nil
			}
		}
		return nil, refuse(refusedMissingToken, connect.CodeUnauthenticated,
			"no agent token, and client certificate %q is bound to no identity that needs none", leaf.Subject.String())
	}
	return nil, refuse(refusedMissingToken, connect.CodeUnauthenticated, "agent token required (header %s)", AgentTokenHeader)
}

// checkClaims refuses a request that names an agent id.
func (a *authenticator) checkClaims(r *http.Request) *refusal {
	id := r.Header.Get(agentIDHeader)
	if id == "" {
		return nil
	}
	if a.sessionLive(id) {
		return refuse(refusedOtherAgentID, connect.CodePermissionDenied,
			"agent id %.64q belongs to another connection: the proxy assigns a new id to every session", id)
	}
	return refuse(refusedEndedSession, connect.CodeNotFound,
		"session %.64q is not live and cannot be resumed: open a new session without an agent id", id)
}

// middleware guards every RPC of the agent port.
func (a *authenticator) middleware(next http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ref := a.authenticate(r)
		if ref == nil {
			ref = a.checkClaims(r)
		}
		if ref != nil {
			a.refusals.WithLabelValues(ref.reason).Inc()
			a.log.Warn("agent request refused", "reason", ref.reason, "remote_addr", r.RemoteAddr,
				"procedure", r.URL.Path, "err", ref.err.Message())
			_ = ew.Write(w, r, ref.err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

// countPathRefusal counts a path registration refused by authorization.
func (a *authenticator) countPathRefusal(reason string) {
	a.refusals.WithLabelValues(reason).Inc()
}

type identityKey struct{}

// identityFrom returns the identity the middleware resolved for ctx's
// request; nil is the anonymous identity.
func identityFrom(ctx context.Context) *identity {
	id, _ := ctx.Value(identityKey{}).(*identity)
	return id
}
