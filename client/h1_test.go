package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawTarget is a target that answers every request on a connection with
// the next of its canned answers, so that a test controls the bytes on the
// wire, and counts the connections it accepted.
type rawTarget struct {
	ln       net.Listener
	accepted atomic.Int32
	answer   func(conn int, req int) string // "" closes the connection
	wg       sync.WaitGroup
}

func newRawTarget(t *testing.T, answer func(conn, req int) string) *rawTarget {
	t.Helper()
	return startRawTarget(t, answer, false)
}

// startRawTarget starts the target; hangUp closes every connection after
// its first answer.
func startRawTarget(t *testing.T, answer func(conn, req int) string, hangUp bool) *rawTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rt := &rawTarget{ln: ln, answer: answer}
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(rt.accepted.Add(1))
			rt.wg.Add(1)
			go func() {
				defer rt.wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				for i := 1; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					a := rt.answer(n, i)
					if a == "" {
						return
					}
					if _, err := io.WriteString(nc, a); err != nil || hangUp {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		rt.wg.Wait()
	})
	return rt
}

func (rt *rawTarget) url(path string) string { return "http://" + rt.ln.Addr().String() + path }

func newTestH1(t *testing.T) *h1Transport {
	t.Helper()
	tr := newH1Transport(&http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute, DisableCompression: true})
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func roundTripBody(t *testing.T, rt http.RoundTripper, u string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", u, err)
	}
	return resp, string(b)
}

const (
	lengthAnswer  = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nabc 1\n"
	chunkedAnswer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\n 2\n\r\n0\r\n\r\n"
)

func TestH1ReusesConnectionAcrossBodyKinds(t *testing.T) {
	target := newRawTarget(t, func(_, req int) string {
		if req%2 == 0 {
			return chunkedAnswer
		}
		return lengthAnswer
	})
	tr := newTestH1(t)
	for i := 1; i <= 6; i++ {
		resp, body := roundTripBody(t, tr, target.url("/metrics"))
		want := "abc 1\n"
		if i%2 == 0 {
			want = "abc 2\n"
		}
		if resp.StatusCode != 200 || body != want {
			t.Fatalf("request %d: status %d body %q, want 200 %q", i, resp.StatusCode, body, want)
		}
	}
	if n := target.accepted.Load(); n != 1 {
		t.Fatalf("six sequential requests used %d connections, want 1", n)
	}
}

func TestH1RetriesOnceWhenTheTargetClosedAnIdleConnection(t *testing.T) {
	// The first connection answers once and is then closed by the target
	// as soon as the next request arrives, as an idle timeout would.
	target := newRawTarget(t, func(conn, req int) string {
		if conn == 1 && req > 1 {
			return ""
		}
		return lengthAnswer
	})
	tr := newTestH1(t)
	roundTripBody(t, tr, target.url("/"))
	_, body := roundTripBody(t, tr, target.url("/"))
	if body != "abc 1\n" {
		t.Fatalf("body %q after the retry", body)
	}
	if n := target.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (the stale one and its replacement)", n)
	}
}

func TestH1DoesNotRetryAFreshConnection(t *testing.T) {
	target := newRawTarget(t, func(int, int) string { return "" })
	tr := newTestH1(t)
	req, _ := http.NewRequest(http.MethodGet, target.url("/"), nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("a target that hangs up without answering gave no error")
	}
	if n := target.accepted.Load(); n != 1 {
		t.Fatalf("%d connections for one failing request, want 1", n)
	}
}

func TestH1ClosesConnectionsItCannotReuse(t *testing.T) {
	cases := map[string]struct {
		answer  string
		abandon bool // close the body without reading it
	}{
		"abandoned body":   {answer: lengthAnswer, abandon: true},
		"connection close": {answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 6\r\n\r\nabc 1\n"},
		"HTTP/1.0":         {answer: "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nabc 1\n"},
		"close-delimited":  {answer: "HTTP/1.1 200 OK\r\n\r\nabc 1\n"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var target *rawTarget
			if name == "close-delimited" {
				// Such a body ends only when the target hangs up.
				target = newClosingTarget(t, tc.answer)
			} else {
				target = newRawTarget(t, func(int, int) string { return tc.answer })
			}
			tr := newTestH1(t)
			for i := 0; i < 2; i++ {
				req, _ := http.NewRequest(http.MethodGet, target.url("/"), nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				if tc.abandon {
					resp.Body.Close()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != "abc 1\n" {
					t.Fatalf("body %q, err %v", b, err)
				}
			}
			if n := target.accepted.Load(); n != 2 {
				t.Fatalf("%d connections for two requests, want 2: the first must not be reused", n)
			}
		})
	}
}

// newClosingTarget answers each connection's first request with answer
// and hangs up, which is how a body without a length ends.
func newClosingTarget(t *testing.T, answer string) *rawTarget {
	t.Helper()
	return startRawTarget(t, func(int, int) string { return answer }, true)
}

func TestH1SkipsInformationalAnswers(t *testing.T) {
	target := newRawTarget(t, func(int, int) string {
		return "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + lengthAnswer
	})
	resp, body := roundTripBody(t, newTestH1(t), target.url("/"))
	if resp.StatusCode != 200 || body != "abc 1\n" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("status %d, body %q, content type %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

// stallingTarget sends the head of its answer and first, then sends nothing
// more until the client goes away or the test ends.
func stallingTarget(t *testing.T, first string) *httptest.Server {
	t.Helper()
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, first)
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(stall)
		srv.Close()
	})
	return srv
}

func TestH1CancelUnblocksABodyRead(t *testing.T) {
	srv := stallingTarget(t, "first piece\n")
	tr := newTestH1(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	if _, err := io.ReadAtLeast(resp.Body, buf, len("first piece\n")); err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		readErr <- err
	}()
	cancel()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("reading a stalled body after cancel gave no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not unblock the body read within 5 s")
	}
	tr.mu.Lock()
	idle := len(tr.idle[hostPort(req.URL)])
	tr.mu.Unlock()
	if idle != 0 {
		t.Fatalf("a cancelled request's connection went back to the idle set")
	}
}

func TestH1CancelBeforeTheAnswer(t *testing.T) {
	t.Run("while waiting for the answer", func(t *testing.T) {
		asked := make(chan struct{}, 1)
		release := make(chan struct{})
		defer close(release)
		// The target takes the request and holds its answer until the
		// test ends.
		target := newRawTarget(t, func(int, int) string {
			asked <- struct{}{}
			<-release
			return ""
		})
		ctx, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("proxy cancelled the scrape")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target.url("/"), nil)
		errc := make(chan error, 1)
		go func() {
			_, err := newTestH1(t).RoundTrip(req)
			errc <- err
		}()
		<-asked
		cancel(cause)
		select {
		case err := <-errc:
			if !errors.Is(err, cause) {
				t.Fatalf("error %v does not carry the context's cause", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("cancel did not end a request waiting for its answer within 5 s")
		}
	})
	t.Run("before dialling", func(t *testing.T) {
		target := newRawTarget(t, func(int, int) string { return lengthAnswer })
		ctx, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("proxy cancelled the scrape")
		cancel(cause)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target.url("/"), nil)
		if _, err := newTestH1(t).RoundTrip(req); !errors.Is(err, cause) {
			t.Fatalf("error %v does not carry the context's cause", err)
		}
		if n := target.accepted.Load(); n != 0 {
			t.Fatalf("a cancelled request opened %d connections", n)
		}
	})
}

func TestH1LeavesOtherRequestsToTheStandardTransport(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "over tls\n")
	}))
	defer tlsSrv.Close()
	plain := newRawTarget(t, func(int, int) string { return lengthAnswer })

	var proxied atomic.Int32
	proxySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		_, _ = io.WriteString(w, "via proxy "+r.URL.String()+"\n")
	}))
	defer proxySrv.Close()
	proxyURL, _ := url.Parse(proxySrv.URL)

	fallback := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs},
		Proxy: func(r *http.Request) (*url.URL, error) {
			if strings.HasSuffix(r.URL.Path, "/via-proxy") {
				return proxyURL, nil
			}
			return nil, nil
		},
	}
	tr := newH1Transport(fallback)
	defer tr.CloseIdleConnections()

	if _, body := roundTripBody(t, tr, tlsSrv.URL); body != "over tls\n" {
		t.Fatalf("https body %q", body)
	}
	if _, body := roundTripBody(t, tr, plain.url("/via-proxy")); body != fmt.Sprintf("via proxy %s\n", plain.url("/via-proxy")) {
		t.Fatalf("proxied body %q", body)
	}
	if proxied.Load() != 1 || plain.accepted.Load() != 0 {
		t.Fatalf("a request for a proxied URL reached the target directly (proxy saw %d, target %d)", proxied.Load(), plain.accepted.Load())
	}
	if _, body := roundTripBody(t, tr, plain.url("/direct")); body != "abc 1\n" {
		t.Fatalf("direct body %q", body)
	}
}

func TestH1DropsConnectionsIdleTooLong(t *testing.T) {
	target := newRawTarget(t, func(int, int) string { return lengthAnswer })
	tr := newTestH1(t)
	roundTripBody(t, tr, target.url("/"))
	// Age the idle connection instead of waiting for the timeout.
	tr.mu.Lock()
	for _, c := range tr.idle[hostPort(mustURL(t, target.url("/")))] {
		c.since = c.since.Add(-2 * tr.idleTimeout)
	}
	tr.mu.Unlock()
	roundTripBody(t, tr, target.url("/"))
	if n := target.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: a connection idle past the timeout must not be used", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestH1DeadlineErrorsCarryTheCause(t *testing.T) {
	srv := stallingTarget(t, "head\n")
	cause := errors.New("target did not answer within the scrape timeout")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 200*time.Millisecond, cause)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := newTestH1(t).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, cause) {
		t.Fatalf("body read ended with %v, which does not carry the deadline's cause", err)
	}
}

// countingConn counts the reads made on a connection.
type countingConn struct {
	net.Conn
	reads atomic.Int32
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.Conn.Read(p)
}

// An uncompressed answer of some kilobytes, chunked the way a Go exporter
// writes it, is taken in one read, and an idle connection holds no buffer.
func TestH1ReadsAnAnswerAtOnceAndKeepsNoBufferWhileIdle(t *testing.T) {
	var body, wire strings.Builder
	wire.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range 5 {
		chunk := strings.Repeat(fmt.Sprintf("metric_%d 1\n", i), 4000/12)
		body.WriteString(chunk)
		fmt.Fprintf(&wire, "%x\r\n%s\r\n", len(chunk), chunk)
	}
	wire.WriteString("0\r\n\r\n")

	tr := newTestH1(t)
	var conn *countingConn
	var served sync.WaitGroup
	tr.dial = func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		conn = &countingConn{Conn: client}
		served.Add(1)
		go func() {
			defer served.Done()
			defer server.Close()
			br := bufio.NewReader(server)
			for {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				// One write, as net.Pipe hands it to reads in pieces no
				// larger than the reader asks for.
				if _, err := io.WriteString(server, wire.String()); err != nil {
					return
				}
			}
		}()
		return conn, nil
	}
	t.Cleanup(served.Wait)
	t.Cleanup(tr.CloseIdleConnections)

	for i := range 2 {
		before := int32(0)
		if conn != nil {
			before = conn.reads.Load()
		}
		resp, got := roundTripBody(t, tr, "http://target.invalid:9100/metrics")
		if resp.StatusCode != 200 || got != body.String() {
			t.Fatalf("request %d: status %d, %d body bytes, want 200 and %d", i+1, resp.StatusCode, len(got), body.Len())
		}
		if n := conn.reads.Load() - before; n > 1 {
			t.Errorf("request %d: a %d-byte answer took %d reads, want 1", i+1, wire.Len(), n)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	idle := tr.idle["target.invalid:9100"]
	if len(idle) != 1 {
		t.Fatalf("%d idle connections, want the one used twice", len(idle))
	}
	if idle[0].br != nil {
		t.Error("an idle connection still holds its read buffer")
	}
}
