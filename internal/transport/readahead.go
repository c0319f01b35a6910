package transport

import (
	"net"
	"sync"
)

// ReadAhead wraps ln so that reads on its connections fetch what the kernel
// has, not just what was asked for.
//
// The HTTP/2 server in net/http reads every frame from the connection with
// two calls, one for the 9-byte header and one for the payload, and reads
// the connection unbuffered on cleartext HTTP/2 (TLS buffers on its own).
// Each call is a system call. With read-ahead, a frame and often the
// frames behind it arrive in one call: a heartbeat costs the proxy one read
// instead of two, a burst of scrape results one read instead of two per
// frame.
//
// Memory stays small for idle connections, which the proxy holds by the
// ten thousand: a connection waits for data with a small buffer of its own,
// and borrows a large pooled one only while data keeps coming.
func ReadAhead(ln net.Listener) net.Listener { return readAheadListener{ln} }

type readAheadListener struct{ net.Listener }

func (l readAheadListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &readAheadConn{Conn: c}, nil
}

const (
	smallReadAhead = 256      // every connection's own buffer
	largeReadAhead = 32 << 10 // borrowed while data keeps coming
)

var largeBufs = sync.Pool{New: func() any { return new([largeReadAhead]byte) }}

// readAheadConn buffers reads. It is read by one goroutine at a time, as
// every net/http server reads its connections. Close may come from another
// goroutine, so it leaves a borrowed buffer to the garbage collector rather
// than race the reader for it.
type readAheadConn struct {
	net.Conn
	small [smallReadAhead]byte
	large *[largeReadAhead]byte
	buf   []byte // unread bytes, in small or large
	// keepLarge is false once a read came back short of the large buffer:
	// the kernel had no more, so the next wait can do with the small one.
	keepLarge bool
}

func (c *readAheadConn) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		direct := len(p) >= largeReadAhead // the caller's buffer is as good
		if c.large != nil && (!c.keepLarge || direct) {
			largeBufs.Put(c.large)
			c.large = nil
		}
		if direct {
			return c.Conn.Read(p)
		}
		into := c.small[:]
		if c.large != nil {
			into = c.large[:]
		}
		n, err := c.Conn.Read(into)
		if n == 0 {
			if c.large != nil {
				// The connection ended or failed: nothing more to buffer.
				largeBufs.Put(c.large)
				c.large = nil
			}
			return 0, err
		}
		c.buf = into[:n]
		switch {
		case c.large == nil && n == len(into):
			// A full small buffer: more is likely waiting.
			c.large = largeBufs.Get().(*[largeReadAhead]byte)
			c.keepLarge = true
		case c.large != nil:
			c.keepLarge = n == len(into)
		}
		// A read error with data is reported by the next read, which
		// the kernel answers again.
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// CloseWrite half-closes the connection when it can, as net/http does
// before closing a connection it answered with an error.
func (c *readAheadConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
