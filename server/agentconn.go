package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

// errAgentGone fails the scrapes of an agent whose session has ended.
var errAgentGone = errors.New("agent disconnected")

// agentConn is the proxy's side of one agent session.
//
// Concurrency: the session's handler goroutine is the only sender on the
// stream and drains out; a separate goroutine is the only receiver and
// dispatches scrape frames to the scrapeCall waiting for them. Scrape
// handlers never touch the stream: they enqueue on out and read their own
// frames channel. done is closed exactly once when the session ends, which
// wakes every waiter at once.
type agentConn struct {
	id           string
	name         string
	hostName     string
	launchID     string
	consolidated bool
	labels       map[string]string
	remoteAddr   string
	version      string
	connectedAt  time.Time
	// identity is who the agent authenticated as; set before the agent is
	// added to the registry and never changed.
	identity *identity

	lastActivity atomic.Int64 // unix nanoseconds
	nextScrapeID atomic.Uint64

	out chan *promproxyv1.SessionResponse

	done     chan struct{}
	doneOnce sync.Once
	cause    error // set before done is closed

	mu      sync.Mutex
	scrapes map[uint64]*scrapeCall
	paths   map[string]struct{}
}

func newAgentConn(id string, reg *promproxyv1.RegisterAgent, remoteAddr string) *agentConn {
	now := time.Now()
	c := &agentConn{
		id:           id,
		name:         reg.GetAgentName(),
		hostName:     reg.GetHostName(),
		launchID:     reg.GetLaunchId(),
		consolidated: reg.GetConsolidated(),
		labels:       reg.GetLabels(),
		remoteAddr:   remoteAddr,
		version:      reg.GetVersion(),
		connectedAt:  now,
		out:          make(chan *promproxyv1.SessionResponse, 256),
		done:         make(chan struct{}),
		scrapes:      make(map[uint64]*scrapeCall),
		paths:        make(map[string]struct{}),
	}
	c.lastActivity.Store(now.UnixNano())
	return c
}

func (c *agentConn) touch()                { c.lastActivity.Store(time.Now().UnixNano()) }
func (c *agentConn) lastActive() time.Time { return time.Unix(0, c.lastActivity.Load()) }

// close ends the session with cause; the first cause wins.
func (c *agentConn) close(cause error) {
	c.doneOnce.Do(func() {
		c.cause = cause
		close(c.done)
	})
}

// err returns why the session ended, or nil while it is live.
func (c *agentConn) err() error {
	select {
	case <-c.done:
		return c.cause
	default:
		return nil
	}
}

// send queues msg for the session's sender. It fails when the session ends
// or ctx is done first, so a stuck agent can hold up a scrape only until
// that scrape's deadline.
func (c *agentConn) send(ctx context.Context, msg *promproxyv1.SessionResponse) error {
	select {
	case c.out <- msg:
		return nil
	case <-c.done:
		return errAgentGone
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// trySend queues msg without waiting; it is for advisory messages whose loss
// only costs efficiency.
func (c *agentConn) trySend(msg *promproxyv1.SessionResponse) bool {
	select {
	case c.out <- msg:
		return true
	default:
		return false
	}
}

func (c *agentConn) addPath(p string) {
	c.mu.Lock()
	c.paths[p] = struct{}{}
	c.mu.Unlock()
}

func (c *agentConn) removePath(p string) {
	c.mu.Lock()
	delete(c.paths, p)
	c.mu.Unlock()
}

func (c *agentConn) ownedPaths() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]string, 0, len(c.paths))
	for p := range c.paths {
		ps = append(ps, p)
	}
	return ps
}

// scrapeCall is one scrape waiting for its frames.
type scrapeCall struct {
	id     uint64
	frames chan *promproxyv1.ScrapeResult
	// granted is the credit given to the agent so far; received, touched
	// only by the session's receiver, counts the frames that used it.
	granted  atomic.Uint32
	received uint32
}

// startScrape registers a new scrape; credit bounds the frames the agent may
// send before the proxy grants more, so frames never blocks the receiver.
func (c *agentConn) startScrape(credit uint32) (*scrapeCall, error) {
	call := &scrapeCall{
		id:     c.nextScrapeID.Add(1),
		frames: make(chan *promproxyv1.ScrapeResult, credit+1), // +1: a failure trailer needs no credit
	}
	call.granted.Store(credit)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.err(); err != nil {
		return nil, errAgentGone
	}
	c.scrapes[call.id] = call
	return call, nil
}

// endScrape forgets call. It reports whether the call was still registered.
func (c *agentConn) endScrape(call *scrapeCall) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.scrapes[call.id]
	delete(c.scrapes, call.id)
	return ok
}

func (c *agentConn) inFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.scrapes)
}

// errCreditExceeded ends a session whose agent sent more frames than it was
// allowed; such an agent is broken or hostile.
var errCreditExceeded = errors.New("agent sent more scrape frames than its credit allows")

// deliver hands a frame to its scrape. Frames of scrapes that already ended
// (cancelled, timed out) are dropped: the agent may have sent them before it
// saw the cancel.
func (c *agentConn) deliver(f *promproxyv1.ScrapeResult) (known bool, err error) {
	c.mu.Lock()
	call := c.scrapes[f.GetScrapeId()]
	c.mu.Unlock()
	if call == nil {
		return false, nil
	}
	// A bare trailer ends a failed scrape and needs no credit; every other
	// frame spends one.
	if f.GetTrailer() == nil || len(f.GetChunk()) > 0 || f.GetHeader() != nil {
		call.received++
		if call.received > call.granted.Load() {
			return true, errCreditExceeded
		}
	}
	select {
	case call.frames <- f:
		return true, nil
	default:
		return true, errCreditExceeded
	}
}
