package transport

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
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
	if server.large != nil {
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
	if server.large != nil {
		t.Fatal("a connection exchanging small messages still holds the large buffer")
	}
}
