package client

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// connSet remembers the connections the agent dialled to its proxies, so
// that stopping the agent can close them. CloseIdleConnections is not
// enough: a session's HTTP/2 stream is torn down asynchronously after it is
// cancelled, so at that moment its connection may not count as idle yet,
// and it would then stay open, with the transport's goroutines, until the
// proxy's idle timeout.
type connSet struct {
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newConnSet() *connSet {
	return &connSet{conns: make(map[*trackedConn]struct{})}
}

// track makes every transport behind rt dial through the set.
func (s *connSet) track(rt http.RoundTripper) {
	wrap := func(tr *http.Transport) {
		if tr != nil {
			tr.DialContext = s.dialer(tr.DialContext)
		}
	}
	switch t := rt.(type) {
	case *proxyTransport:
		wrap(t.shared)
		for _, tr := range t.byHost {
			wrap(tr)
		}
	case *http.Transport:
		wrap(t)
	}
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// dialer returns dial wrapped so that its connections are tracked.
func (s *connSet) dialer(dial dialFunc) dialFunc {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return s.add(c), nil
	}
}

func (s *connSet) add(c net.Conn) net.Conn {
	tc := &trackedConn{Conn: c, set: s}
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc
}

// closeAll closes every tracked connection that is still open.
func (s *connSet) closeAll() {
	s.mu.Lock()
	conns := s.conns
	s.conns = make(map[*trackedConn]struct{})
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.conns, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}
