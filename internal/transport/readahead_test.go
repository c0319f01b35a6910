package transport

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"testing"
	"time"
)

// countingConn counts the reads that reach the connection.
type countingConn struct {
	net.Conn
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.Conn.Read(p)
}

func pipePair(t *testing.T) (client net.Conn, server *readAheadConn, counted *countingConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ReadAhead(ln).Accept()
	if err != nil {
		t.Fatal(err)
	}
	rc := sc.(*readAheadConn)
	counted = &countingConn{Conn: rc.Conn}
	rc.Conn = counted
	t.Cleanup(func() {
		client.Close()
		sc.Close()
	})
	return client, rc, counted
}

func TestReadAheadServesAFrameFromOneRead(t *testing.T) {
	client, server, counted := pipePair(t)
	// A 16-byte HTTP/2 DATA frame, read as net/http reads it: header,
	// then payload.
	frame := []byte{0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0x3a, 0}
	if _, err := client.Write(frame); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(frame))
	if _, err := io.ReadFull(server, got[:9]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, got[9:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, frame) {
		t.Fatalf("read %x, want %x", got, frame)
	}
	if counted.reads != 1 {
		t.Fatalf("%d reads reached the connection for one frame, want 1", counted.reads)
	}
}

func TestReadAheadKeepsEveryByteInOrder(t *testing.T) {
	client, server, _ := pipePair(t)
	data := make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	go func() {
		// Writes of every size, with pauses, so that reads come back
		// short, full and in between.
		rest := data
		for len(rest) > 0 {
			n := min(len(rest), 1+rng.IntN(70000))
			if _, err := client.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
			if rng.IntN(8) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		client.Close()
	}()
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for {
		// Reads of every size, from a frame header to more than the
		// large buffer.
		n, err := server.Read(buf[:1+rand.IntN(len(buf))])
		got.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes that differ from the %d written", got.Len(), len(data))
	}
	if server.ra.large != nil {
		t.Fatal("the large buffer is still borrowed after the connection went quiet")
	}
}

func TestReadAheadReturnsTheLargeBufferWhenQuiet(t *testing.T) {
	client, server, _ := pipePair(t)
	burst := make([]byte, 100<<10)
	if _, err := client.Write(burst); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, len(burst))); err != nil {
		t.Fatal(err)
	}
	// The next message is small: the wait for it must not hold the
	// large buffer, nor must the connection keep it after.
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	if server.ra.large != nil {
		t.Fatal("a connection exchanging small messages still holds the large buffer")
	}
}

// countingBody counts the reads that reach a request body.
type countingBody struct {
	io.Reader
	reads int
}

func (b *countingBody) Read(p []byte) (int, error) {
	b.reads++
	return b.Reader.Read(p)
}

func (b *countingBody) Close() error { return nil }

// TestReadAheadBodyDrainsQueuedMessagesInFewReads reads gRPC-framed
// messages the way Connect does, a 5-byte prefix and then the payload, from
// a body that already holds twenty of them, as a session's body does when
// results queue up. Each read of the real body is a round trip through the
// HTTP/2 server's serve loop, so the twenty must not cost forty.
func TestReadAheadBodyDrainsQueuedMessagesInFewReads(t *testing.T) {
	var stream bytes.Buffer
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		payload := make([]byte, 100+rng.IntN(1500))
		for i := range payload {
			payload[i] = byte(rng.Uint32())
		}
		stream.Write([]byte{0, 0, 0, byte(len(payload) >> 8), byte(len(payload))})
		stream.Write(payload)
	}
	want := bytes.Clone(stream.Bytes())
	body := &countingBody{Reader: &stream}
	var got bytes.Buffer
	h := ReadAheadBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix := make([]byte, 5)
		for {
			if _, err := io.ReadFull(r.Body, prefix); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Error(err)
				}
				return
			}
			got.Write(prefix)
			n := int64(prefix[3])<<8 | int64(prefix[4])
			if _, err := io.CopyN(&got, r.Body, n); err != nil {
				t.Error(err)
				return
			}
		}
	}))
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = body
	h.ServeHTTP(nil, req)
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes that differ from the %d sent", got.Len(), len(want))
	}
	// 17 KB: one small read, one large one, and the large buffer's
	// share of the rest; without read-ahead this is 40 reads and more.
	t.Logf("%d reads of the body", body.reads)
	if body.reads > 4 {
		t.Errorf("%d reads of the body for 20 queued messages; want at most 4", body.reads)
	}
}

func TestReadAheadBodyLeavesNoBodyAlone(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	ReadAheadBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != http.NoBody {
			t.Errorf("a request without a body got %T", r.Body)
		}
	})).ServeHTTP(nil, req)
}
