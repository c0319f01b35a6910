package server

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// pathOwner is one agent serving a path, with that agent's labels for it.
type pathOwner struct {
	conn   *agentConn
	labels map[string]string
}

// pathEntry is one row of the path table.
type pathEntry struct {
	owners       []pathOwner
	consolidated bool
	rotate       atomic.Uint64 // next owner to try first in failover mode
}

// registry is the proxy's table of agents and paths. One RWMutex guards
// both maps: registrations are rare, lookups happen on every scrape and take
// only the read lock.
type registry struct {
	mu     sync.RWMutex
	agents map[string]*agentConn
	paths  map[string]*pathEntry
	// gone remembers paths whose last agent left, for the dashboard and
	// for a clearer 404 reason.
	gone map[string]time.Time
}

func newRegistry() *registry {
	return &registry{
		agents: make(map[string]*agentConn),
		paths:  make(map[string]*pathEntry),
		gone:   make(map[string]time.Time),
	}
}

func (r *registry) agentCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.agents)
}

func (r *registry) pathCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.paths)
}

func (r *registry) addAgent(c *agentConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.agents[c.id] = c
}

// removeAgent deletes the agent and every path it owned, and returns the
// paths that now have no agent at all.
func (r *registry) removeAgent(c *agentConn) (orphaned []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.agents, c.id)
	for _, p := range c.ownedPaths() {
		if r.dropOwnerLocked(p, c) {
			orphaned = append(orphaned, p)
		}
	}
	return orphaned
}

// dropOwnerLocked removes c from path p and reports whether p is now empty.
func (r *registry) dropOwnerLocked(p string, c *agentConn) bool {
	e := r.paths[p]
	if e == nil {
		return false
	}
	e.owners = slices.DeleteFunc(e.owners, func(o pathOwner) bool { return o.conn == c })
	if len(e.owners) == 0 {
		delete(r.paths, p)
		r.gone[p] = time.Now()
		if len(r.gone) > 1000 {
			r.pruneGoneLocked()
		}
		return true
	}
	return false
}

func (r *registry) pruneGoneLocked() {
	type kv struct {
		p string
		t time.Time
	}
	all := make([]kv, 0, len(r.gone))
	for p, t := range r.gone {
		all = append(all, kv{p, t})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	for _, e := range all[:len(all)-500] {
		delete(r.gone, e.p)
	}
}

// registration is the outcome of registerPath.
type registration struct {
	accepted  bool
	reason    string
	displaced *agentConn
	// identityConflict marks a refusal because agents of another identity
	// serve the path.
	identityConflict bool
}

// registerPath routes path to c. Between non-consolidated agents the newest
// registration wins: it is the only rule that lets a restarted agent take
// its paths back from a session that is dying but not yet evicted. The
// displaced agent is told and does not register the path again on that
// session, so two agents cannot take a path from each other in a loop.
func (r *registry) registerPath(c *agentConn, path string, labels map[string]string) registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.paths[path]
	if e == nil {
		r.paths[path] = &pathEntry{owners: []pathOwner{{conn: c, labels: labels}}, consolidated: c.consolidated}
		delete(r.gone, path)
		c.addPath(path)
		return registration{accepted: true}
	}
	for i, o := range e.owners {
		if o.conn == c {
			e.owners[i].labels = labels
			return registration{accepted: true}
		}
	}
	// A path belongs to the identity of the agents serving it: no other
	// identity may join it or displace them, whatever their flags.
	if owner := e.owners[0].conn; owner.identity != c.identity {
		return registration{identityConflict: true, reason: fmt.Sprintf("path %q is served by agent %q of identity %q; identity %q cannot take it over or join it",
			path, owner.name, owner.identity.label(), c.identity.label())}
	}
	switch {
	case e.consolidated && c.consolidated:
		e.owners = append(e.owners, pathOwner{conn: c, labels: labels})
		c.addPath(path)
		return registration{accepted: true}
	case e.consolidated:
		return registration{reason: fmt.Sprintf("path %q is served by consolidated agents; agent %q is not consolidated and cannot join them", path, c.name)}
	case c.consolidated:
		return registration{reason: fmt.Sprintf("path %q is served by non-consolidated agent %q; consolidated agent %q cannot join it", path, e.owners[0].conn.name, c.name)}
	}
	old := e.owners[0].conn
	old.removePath(path)
	e.owners[0] = pathOwner{conn: c, labels: labels}
	c.addPath(path)
	return registration{accepted: true, displaced: old, reason: fmt.Sprintf("displaced agent %q (%s)", old.name, old.id)}
}

// unregisterPath removes c from path, reporting whether c served it and
// whether the path is now empty.
func (r *registry) unregisterPath(c *agentConn, path string) (removed, orphaned bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.paths[path]
	if e == nil || !slices.ContainsFunc(e.owners, func(o pathOwner) bool { return o.conn == c }) {
		return false, false
	}
	c.removePath(path)
	return true, r.dropOwnerLocked(path, c)
}

// lookup returns the agents serving path, in the order a failover scrape
// should try them, or ok=false when the path is unknown.
func (r *registry) lookup(path string) (owners []*agentConn, consolidated, ok bool, goneSince time.Time) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e := r.paths[path]
	if e == nil {
		return nil, false, false, r.gone[path]
	}
	owners = make([]*agentConn, len(e.owners))
	start := 0
	if n := len(e.owners); n > 1 {
		start = int((e.rotate.Add(1) - 1) % uint64(n))
	}
	for i := range e.owners {
		owners[i] = e.owners[(start+i)%len(e.owners)].conn
	}
	return owners, e.consolidated, true, time.Time{}
}

// staleAgents returns the agents not heard from since cutoff.
func (r *registry) staleAgents(cutoff time.Time) []*agentConn {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var stale []*agentConn
	for _, c := range r.agents {
		if c.lastActive().Before(cutoff) {
			stale = append(stale, c)
		}
	}
	return stale
}

// allAgents returns the connected agents ordered by connection time.
func (r *registry) allAgents() []*agentConn {
	r.mu.RLock()
	all := make([]*agentConn, 0, len(r.agents))
	for _, c := range r.agents {
		all = append(all, c)
	}
	r.mu.RUnlock()
	sort.Slice(all, func(i, j int) bool { return all[i].connectedAt.Before(all[j].connectedAt) })
	return all
}

// backlog is the number of messages queued for agents but not yet sent.
func (r *registry) backlog() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, c := range r.agents {
		n += len(c.out)
	}
	return n
}
