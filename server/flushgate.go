package server

import (
	"context"
	"net/http"
)

// flushGate lets a session's sender write several messages to the agent
// with one flush.
//
// Connect flushes the response after every message it sends, and on HTTP/2
// each flush is a round trip through the connection's serve loop and a
// write system call of its own. When scrape requests queue up for one
// agent, the sender holds the flush while more messages wait and flushes
// once after the last, so a burst of requests leaves in one write instead
// of one per request.
type flushGate struct {
	http.ResponseWriter
	// held is only touched by the session's sender, which is also the only
	// goroutine that sends, and so the only one that flushes.
	held bool
}

type flushGateKey struct{}

// withFlushGate wraps the response writer of every request in a flushGate
// that the handler can find in its context.
func withFlushGate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := &flushGate{ResponseWriter: w}
		next.ServeHTTP(g, r.WithContext(context.WithValue(r.Context(), flushGateKey{}, g)))
	})
}

// flushGateFrom returns the request's flushGate, or nil when there is none.
func flushGateFrom(ctx context.Context) *flushGate {
	g, _ := ctx.Value(flushGateKey{}).(*flushGate)
	return g
}

// hold makes the next flushes no-ops while on is true. A nil gate never
// holds.
func (g *flushGate) hold(on bool) {
	if g != nil {
		g.held = on
	}
}

// Flush implements http.Flusher.
func (g *flushGate) Flush() {
	if g.held {
		return
	}
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (g *flushGate) Unwrap() http.ResponseWriter { return g.ResponseWriter }
