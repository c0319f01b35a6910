package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// h1Transport fetches plain-HTTP targets on the scrape's own goroutine.
//
// net/http's Transport gives every connection a read goroutine and a write
// goroutine, so a request crosses three goroutines and back: the caller
// hands the request to the writer, the reader hands the response to the
// caller. On a busy agent those hand-offs wake sleeping threads on every
// scrape, and waking threads is the dearest thing a scrape does after its
// system calls. Here the caller writes the request and reads the answer
// itself; nothing else touches the connection.
//
// Only the common case takes this path: a GET without a body to an http://
// URL that no HTTP proxy stands in front of. Everything else (https, proxies
// from the environment, other methods) goes to fallback, the standard
// Transport, which also stays in charge of what it does best, such as
// HTTP/2 and TLS session reuse.
type h1Transport struct {
	fallback       *http.Transport
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdlePerHost int
	idleTimeout    time.Duration

	mu   sync.Mutex
	idle map[string][]*h1Conn // by host:port, most recently used last
}

// h1Conn is one kept-alive connection to a target. It holds buffers only
// while a request is under way: an agent may keep a connection to each of
// hundreds of targets, and most of them sit idle between scrapes.
type h1Conn struct {
	t     *h1Transport
	key   string
	nc    net.Conn
	br    *bufio.Reader // from readers, while an answer is read
	since time.Time     // when it went idle
}

// The read buffer is large enough to take a typical answer's head and body
// in one read: with net/http's 4 KiB, a 10 KB uncompressed body took three
// reads and the chunked encoding's framing more.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 32<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// dropReader returns the read buffer; whatever it still holds is discarded.
func (c *h1Conn) dropReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
}

func newH1Transport(fallback *http.Transport) *h1Transport {
	return &h1Transport{
		fallback:       fallback,
		dial:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		maxIdlePerHost: max(fallback.MaxIdleConnsPerHost, 1),
		idleTimeout:    fallback.IdleConnTimeout,
		idle:           make(map[string][]*h1Conn),
	}
}

// takes reports whether req is one this transport handles itself.
func (t *h1Transport) takes(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Method != http.MethodGet || (req.Body != nil && req.Body != http.NoBody) || req.Close {
		return false
	}
	if t.fallback.Proxy != nil {
		if u, err := t.fallback.Proxy(req); err != nil || u != nil {
			return false
		}
	}
	return true
}

// RoundTrip implements http.RoundTripper.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.takes(req) {
		return t.fallback.RoundTrip(req)
	}
	key := hostPort(req.URL)
	if c := t.get(key); c != nil {
		resp, err := c.roundTrip(req)
		// A kept-alive connection may have been closed by the target
		// while it sat idle, which shows only once the request is sent. A
		// GET is safe to send again, so that failure is retried once on
		// a fresh connection, as net/http does.
		if err == nil || !errors.Is(err, errStaleConn) || req.Context().Err() != nil {
			return resp, err
		}
	}
	c, err := t.connect(req.Context(), key)
	if err != nil {
		return nil, withCause(req.Context(), err)
	}
	return c.roundTrip(req)
}

// errStaleConn marks a request that failed before a single byte of answer
// came back on a reused connection.
var errStaleConn = errors.New("kept-alive connection closed by the target")

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func (t *h1Transport) connect(ctx context.Context, key string) (*h1Conn, error) {
	nc, err := t.dial(ctx, "tcp", key)
	if err != nil {
		return nil, err
	}
	return &h1Conn{t: t, key: key, nc: nc}, nil
}

// get takes the most recently used idle connection to key, closing those
// idle for longer than the idle timeout.
func (t *h1Transport) get(key string) *h1Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	conns := t.idle[key]
	for len(conns) > 0 {
		c := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		conns = conns[:len(conns)-1]
		t.idle[key] = conns
		if t.idleTimeout > 0 && time.Since(c.since) > t.idleTimeout {
			_ = c.nc.Close()
			continue
		}
		return c
	}
	return nil
}

// put keeps c for the next request to its host, or closes it when enough
// are kept already.
func (t *h1Transport) put(c *h1Conn) {
	c.since = time.Now()
	t.mu.Lock()
	conns := t.idle[c.key]
	if len(conns) >= t.maxIdlePerHost {
		t.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	// Connections at the front have been idle the longest; drop those past
	// the idle timeout while here, so a path no longer scraped does not
	// keep its connections forever.
	drop := 0
	for drop < len(conns) && t.idleTimeout > 0 && c.since.Sub(conns[drop].since) > t.idleTimeout {
		_ = conns[drop].nc.Close()
		drop++
	}
	t.idle[c.key] = append(conns[drop:], c)
	t.mu.Unlock()
}

// CloseIdleConnections closes every idle connection, here and in fallback.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = make(map[string][]*h1Conn)
	t.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			_ = c.nc.Close()
		}
	}
	t.fallback.CloseIdleConnections()
}

// aLongTimeAgo is a deadline that has passed: setting it unblocks any read
// or write on the connection at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// Cancelling the request (timeout, proxy cancel, shutdown) must unblock
	// whatever the caller is doing on the connection, including reading
	// the body long after RoundTrip returned.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.nc.Close()
		c.dropReader()
		return nil, withCause(ctx, err)
	}
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	err := req.Write(bw)
	if err == nil {
		if err = bw.Flush(); err != nil {
			err = fmt.Errorf("%w: %w", errStaleConn, err)
		}
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		return fail(err)
	}
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c.nc)
	for {
		if _, err := c.br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) || isReadError(err) {
				err = fmt.Errorf("%w: %w", errStaleConn, err)
			}
			return fail(err)
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			resp.Body.Close()
			return fail(errors.New("target answered a GET with 101 Switching Protocols"))
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			// Informational answers (103 Early Hints) precede the real one.
			continue
		}
		resp.Body = &h1Body{c: c, ctx: ctx, body: resp.Body, stop: stop, keep: !resp.Close}
		return resp, nil
	}
}

// withCause makes an error that the request's context caused say so, as
// net/http's errors do: a scrape that ran out of time is then reported as a
// timeout, not as a broken target. A network timeout that coincides with
// the context's deadline comes from that deadline (the dialer derives its
// own from it), even when the context's timer has not fired yet.
func withCause(ctx context.Context, err error) error {
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		<-ctx.Done() // its timer fires at once
	}
	if ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%w (%w)", context.Cause(ctx), err)
}

// isReadError reports a failed read from the connection itself (a reset,
// for one), as opposed to a malformed answer.
func isReadError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// h1Body is a response body; the connection goes back to the idle set once
// the body has been read to its end, and is closed otherwise.
type h1Body struct {
	c    *h1Conn
	ctx  context.Context
	body io.ReadCloser
	stop func() bool
	keep bool // the target allows another request on this connection
	done bool // the connection has been released
	mu   sync.Mutex
}

func (b *h1Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return 0, errors.New("read on a closed response body")
	}
	n, err := b.body.Read(p)
	if err != nil {
		b.release(err == io.EOF)
		if err != io.EOF {
			err = withCause(b.ctx, err)
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		// A body abandoned before its end leaves unread bytes on the
		// connection; it cannot carry another request.
		b.release(false)
	}
	return nil
}

// release ends the body's use of the connection: reuse it when the whole
// body was read cleanly and nothing cancelled the request meanwhile.
func (b *h1Body) release(complete bool) {
	b.done = true
	c := b.c
	// Bytes left after the answer are not an answer to anything: such a
	// connection is not reused.
	reuse := b.stop() && complete && b.keep && c.br.Buffered() == 0
	c.dropReader()
	if !reuse {
		_ = c.nc.Close()
		return
	}
	c.t.put(c)
}
