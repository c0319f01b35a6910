package transport

import (
	"io"
	"net"
	"net/http"
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
	ra readAhead
}

func (c *readAheadConn) Read(p []byte) (int, error) { return c.ra.read(c.Conn, p) }

// readAhead is the buffer behind ReadAhead and ReadAheadBody: a small one
// of its own to wait with, and a large pooled one borrowed while reads keep
// filling it.
type readAhead struct {
	small [smallReadAhead]byte
	large *[largeReadAhead]byte
	buf   []byte // unread bytes, in small or large
	// keepLarge is false once a read came back short of the large buffer:
	// the source had no more, so the next wait can do with the small one.
	keepLarge bool
}

func (ra *readAhead) read(r io.Reader, p []byte) (int, error) {
	if len(ra.buf) == 0 {
		direct := len(p) >= largeReadAhead // the caller's buffer is as good
		if ra.large != nil && (!ra.keepLarge || direct) {
			largeBufs.Put(ra.large)
			ra.large = nil
		}
		if direct {
			return r.Read(p)
		}
		into := ra.small[:]
		if ra.large != nil {
			into = ra.large[:]
		}
		n, err := r.Read(into)
		if n == 0 {
			if ra.large != nil {
				// The source ended or failed: nothing more to buffer.
				largeBufs.Put(ra.large)
				ra.large = nil
			}
			return 0, err
		}
		ra.buf = into[:n]
		switch {
		case ra.large == nil && n == len(into):
			// A full small buffer: more is likely waiting.
			ra.large = largeBufs.Get().(*[largeReadAhead]byte)
			ra.keepLarge = true
		case ra.large != nil:
			ra.keepLarge = n == len(into)
		}
		// A read error with data is reported by the next read, which
		// the source answers again.
	}
	n := copy(p, ra.buf)
	ra.buf = ra.buf[n:]
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

// ReadAheadBody buffers the request bodies h reads the same way.
//
// The HTTP/2 server hands a request body over through a pipe, and every
// read of it that returns data is a message to the connection's serve loop,
// which wakes it and may answer with WINDOW_UPDATE frames, each a write of
// its own. Connect reads a session's messages in small pieces, a 5-byte
// prefix and then the payload, so each message cost at least two such
// round trips; read ahead, the results that queue up while the handler is
// busy come out in one.
func ReadAheadBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &readAheadBody{ReadCloser: r.Body}
		}
		h.ServeHTTP(w, r)
	})
}

// readAheadBody is read by the handler's goroutine alone; like
// readAheadConn, a buffer borrowed at Close is left to the garbage
// collector.
type readAheadBody struct {
	io.ReadCloser
	ra readAhead
}

func (b *readAheadBody) Read(p []byte) (int, error) { return b.ra.read(b.ReadCloser, p) }
