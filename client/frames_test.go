package client_test

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/promproxy/promproxy/client"
)

// TestLargeChunksTravelAsOneFrame checks that a session sends each chunk
// of a large body as one HTTP/2 frame. A session opened before the proxy's
// SETTINGS reach the agent would be held to 16 KiB frames for its whole
// life, and a 32 KiB chunk would cost three writes and three frames.
func TestLargeChunksTravelAsOneFrame(t *testing.T) {
	t.Parallel()
	// Incompressible, so that the agent forwards the target's own gzip
	// in full-size chunks.
	raw := make([]byte, 200<<10)
	_, _ = rand.Read(raw)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gz.Bytes())
	})
	spy := &frameSpy{}
	fp := startFakeProxyWith(t, func(ln net.Listener) net.Listener { return spyListener{ln, spy} }, nil)
	startAgent(t, []string{fp.addr}, []client.PathConfig{{Path: "big", URL: tg.URL}}, nil)
	s := fp.accept(t)
	s.acceptPaths(1)
	s.send(scrapeReq(1, "big", 1000))
	_, body, tr, frames := s.result(1)
	checkIntegrity(t, body, tr)
	if !bytes.Equal(body, gz.Bytes()) || frames < 4 {
		t.Fatalf("got %d bytes in %d frames; want the target's %d bytes in several", len(body), frames, gz.Len())
	}
	if got, chunk := spy.largest(), client.DefaultOptions().ChunkSize; got < chunk {
		t.Errorf("largest DATA frame from the agent: %d bytes; want one frame per %d-byte chunk", got, chunk)
	}
}

// TestSessionOpensWhenHeadIsRefused checks that the HEAD an agent sends
// before its session is only a courtesy: a load balancer in front of the
// proxy that resets the HEAD's stream must not keep the agent out.
func TestSessionOpensWhenHeadIsRefused(t *testing.T) {
	t.Parallel()
	var heads atomic.Int32
	fp := startFakeProxyWith(t, nil, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				heads.Add(1)
				panic(http.ErrAbortHandler) // RST_STREAM on HTTP/2
			}
			h.ServeHTTP(w, r)
		})
	})
	tg := target(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("up 1\n")) })
	startAgent(t, []string{fp.addr}, []client.PathConfig{{Path: "app", URL: tg.URL}}, nil)
	s := fp.accept(t)
	s.acceptPaths(1)
	if heads.Load() == 0 {
		t.Error("the agent sent no HEAD before its session")
	}
}

// frameSpy follows the HTTP/2 frames a client sends and notes the largest
// DATA frame.
type frameSpy struct {
	mu  sync.Mutex
	max int
}

func (f *frameSpy) largest() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max
}

type spyListener struct {
	net.Listener
	spy *frameSpy
}

func (l spyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &spyConn{Conn: c, spy: l.spy, skip: len("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")}, nil
}

// spyConn parses the client's byte stream as it is read: the connection
// preface, then frames of a 9-byte header and a payload.
type spyConn struct {
	net.Conn
	spy  *frameSpy
	skip int    // bytes of the preface or of a payload still to pass over
	hdr  []byte // a frame header read so far
}

func (c *spyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	for b := p[:n]; len(b) > 0; {
		if c.skip > 0 {
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
			continue
		}
		k := min(9-len(c.hdr), len(b))
		c.hdr = append(c.hdr, b[:k]...)
		b = b[k:]
		if len(c.hdr) < 9 {
			continue
		}
		length := int(binary.BigEndian.Uint32(append([]byte{0}, c.hdr[:3]...)))
		if c.hdr[3] == 0 { // DATA
			c.spy.mu.Lock()
			c.spy.max = max(c.spy.max, length)
			c.spy.mu.Unlock()
		}
		c.skip, c.hdr = length, c.hdr[:0]
	}
	return n, err
}
