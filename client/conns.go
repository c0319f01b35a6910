package client

import (
	"context"
	"net"
	"sync"
)

// connSet remembers the connections the agent dialled to its proxies, so
// that stopping the agent can close them. CloseIdleConnections is not
// enough: a session's HTTP/2 stream is torn down asynchronously after it is
// cancelled, so at that moment its connection may not count as idle yet,
// and it would then stay open, with the transport's goroutines, until the
// proxy's idle timeout.
type connSet struct {
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newConnSet(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *connSet {
	return &connSet{dial: dial, conns: make(map[*trackedConn]struct{})}
}

// DialContext dials through the underlying dialer and tracks the result.
func (s *connSet) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := s.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: s}
	s.mu.Lock()
	s.conns[tc] = struct{}{}
	s.mu.Unlock()
	return tc, nil
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
