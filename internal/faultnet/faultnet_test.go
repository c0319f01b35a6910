package faultnet_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/promproxy/promproxy/internal/faultnet"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// echoServer answers every line with the same line until the client closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		close(conns)
		for c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func relay(t *testing.T, target string) *faultnet.Relay {
	t.Helper()
	r, err := faultnet.Listen(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// roundTrip sends line and reads the echo, giving up after d.
func roundTrip(c net.Conn, rd *bufio.Reader, line string, d time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(d))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	s, err := rd.ReadString('\n')
	return s[:max(len(s)-1, 0)], err
}

func TestRelayForwardsStallsAndResumes(t *testing.T) {
	t.Parallel()
	r := relay(t, echoServer(t))
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if got, err := roundTrip(c, rd, "one", 5*time.Second); err != nil || got != "one" {
		t.Fatalf("forwarding: %q %v", got, err)
	}

	r.Stall()
	if !r.Stalled() {
		t.Fatal("Stalled() = false after Stall")
	}
	_, err = roundTrip(c, rd, "two", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a stalled link answered: %v", err)
	}
	// A connection made during the stall is held, not refused.
	c2, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	rd2 := bufio.NewReader(c2)
	if _, err := roundTrip(c2, rd2, "three", 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a connection made during the stall answered: %v", err)
	}

	r.Resume()
	// What was held back arrives first, in order.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := rd.ReadString('\n'); err != nil || s != "two\n" {
		t.Fatalf("held bytes after resume: %q %v", s, err)
	}
	if got, err := roundTrip(c, rd, "four", 5*time.Second); err != nil || got != "four" {
		t.Fatalf("after resume: %q %v", got, err)
	}
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := rd2.ReadString('\n'); err != nil || s != "three\n" {
		t.Fatalf("connection made during the stall, after resume: %q %v", s, err)
	}
}

func TestRelayHoldsCloseWhileStalled(t *testing.T) {
	t.Parallel()
	r := relay(t, echoServer(t))
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if _, err := roundTrip(c, rd, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	r.Stall()
	// The client half-closes; the echo server would close in turn, but
	// neither close may cross a stalled link.
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := rd.ReadByte(); !isTimeout(err) {
		t.Fatalf("read across a stalled link: %v, want a timeout", err)
	}
	r.Resume()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rd.ReadByte(); err != io.EOF {
		t.Fatalf("after resume: %v, want the server's close", err)
	}
}

func TestRelayReset(t *testing.T) {
	t.Parallel()
	r := relay(t, echoServer(t))
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	if _, err := roundTrip(c, rd, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := r.Conns(); n != 1 {
		t.Fatalf("Conns() = %d, want 1", n)
	}
	r.Reset()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := rd.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("read after Reset: %v, want a broken connection", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Conns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Conns() = %d after Reset", r.Conns())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The relay itself keeps working.
	c2, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(c2, bufio.NewReader(c2), "y", 5*time.Second); err != nil || got != "y" {
		t.Fatalf("after Reset: %q %v", got, err)
	}
}

func TestRelayCloseWhileStalled(t *testing.T) {
	t.Parallel()
	r, err := faultnet.Listen(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r.Stall()
	_, _ = io.WriteString(c, "held\n")
	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a stalled relay")
	}
	if _, err := net.Dial("tcp", r.Addr()); err == nil {
		t.Fatal("relay still accepts after Close")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
