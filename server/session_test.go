package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/server"
)

func TestScrapeRequestCarriesPrometheusHeaders(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "app")
	res := scrapeAsync(p, "/app?match[]=up&x=1", http.Header{
		"Accept":                              {"application/openmetrics-text"},
		"Authorization":                       {"Bearer s3cret"},
		"X-Prometheus-Scrape-Timeout-Seconds": {"5"},
	})
	req := fa.nextScrape()
	if req.GetPath() != "app" || req.GetQuery() != "match[]=up&x=1" {
		t.Errorf("path %q query %q", req.GetPath(), req.GetQuery())
	}
	if req.GetAccept() != "application/openmetrics-text" || req.GetAuthorization() != "Bearer s3cret" {
		t.Errorf("accept %q authorization %q", req.GetAccept(), req.GetAuthorization())
	}
	if d := req.GetTimeout().AsDuration(); d <= 0 || d >= 5*time.Second {
		t.Errorf("agent timeout %v, want a little under Prometheus' 5s", d)
	}
	body := []byte("up 1\n")
	f := frame(req.GetScrapeId(), body)
	f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentType: "text/plain; version=0.0.4", ContentLength: int64(len(body))}
	f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE(body)}
	fa.send(f)
	r := wait(t, res)
	if r.err != nil || r.status != 200 || r.body != "up 1\n" || r.header.Get("Content-Type") != "text/plain; version=0.0.4" {
		t.Fatalf("got %d %q %v %v", r.status, r.body, r.header, r.err)
	}
}

func TestScrapeErrors(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	register(t, p, "a", false, "known")
	tests := []struct {
		name   string
		path   string
		status int
		reason string
	}{
		{name: "unknown path", path: "/nope", status: 404, reason: `no agent serves path "nope"`},
		{name: "two segments", path: "/a/b", status: 404, reason: "not a scrape path"},
		{name: "root", path: "/", status: 404, reason: "no path given"},
		{name: "bad characters", path: "/a%20b", status: 404, reason: "one URL segment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := wait(t, scrapeAsync(p, tt.path, nil))
			if r.err != nil || r.status != tt.status || !strings.Contains(r.body, tt.reason) {
				t.Fatalf("got %d %q (%v), want %d containing %q", r.status, r.body, r.err, tt.status, tt.reason)
			}
		})
	}
}

func TestAgentGoneFailsScrapeAtOnce(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "app")
	res := scrapeAsync(p, "/app", nil)
	fa.nextScrape()
	start := time.Now()
	fa.close()
	r := wait(t, res)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "disconnected") {
		t.Fatalf("got %d %q, want 503 agent disconnected", r.status, r.body)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("503 took %v after the agent left", el)
	}
}

func TestScrapeTimeoutHeaderHonoured(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "slow")
	start := time.Now()
	res := scrapeAsync(p, "/slow", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"0.5"}})
	fa.nextScrape() // never answered
	r := wait(t, res)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "timeout") {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if el := time.Since(start); el < 400*time.Millisecond || el > 3*time.Second {
		t.Fatalf("timed out after %v, want about 0.5s", el)
	}
}

func TestClientHangupCancelsAgentScrape(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "app")
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.Addr().String()+"/app", nil)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { _, _ = http.DefaultClient.Do(req.WithContext(ctx)) }()
	sr := fa.nextScrape()
	cancel()
	for {
		m, err := fa.recv()
		if err != nil {
			t.Fatalf("no cancel reached the agent: %v", err)
		}
		if c := m.GetScrapeCancel(); c != nil {
			if c.GetScrapeId() != sr.GetScrapeId() {
				t.Fatalf("cancel for %d, want %d", c.GetScrapeId(), sr.GetScrapeId())
			}
			return
		}
	}
}

func TestCorruptChunkNeverReachesPrometheusWhole(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "app")
	body := bytes.Repeat([]byte("metric 1\n"), 4000)
	res := scrapeAsync(p, "/app", nil)
	req := fa.nextScrape()
	const chunk = 8 << 10
	for off := 0; off < len(body); off += chunk {
		end := min(off+chunk, len(body))
		f := frame(req.GetScrapeId(), body[off:end])
		sr := f.GetScrapeResult()
		if off == 0 {
			sr.Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: int64(len(body))}
		}
		if end == len(body) {
			// The summary does not match: one byte of the body is wrong.
			bad := append([]byte(nil), body...)
			bad[10] ^= 1
			sr.Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE(bad)}
		}
		fa.send(f)
	}
	r := wait(t, res)
	if r.err == nil && len(r.body) == len(body) {
		t.Fatalf("a body failing its checksum reached the client whole (status %d)", r.status)
	}
}

func TestGzipDecompressedForClientsWithoutGzip(t *testing.T) {
	t.Parallel()
	p := runProxy(t, func(o *server.Options) { o.MaxUnzippedContentSize = 1 << 20 })
	fa := register(t, p, "a", false, "small", "bomb", "broken")
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
		return buf.Bytes()
	}
	tests := []struct {
		path   string
		body   []byte
		status int
		want   string
	}{
		{path: "small", body: gz([]byte("up 1\n")), status: 200, want: "up 1\n"},
		{path: "bomb", body: gz(make([]byte, 2<<20)), status: 413, want: "maxUnzippedContentSizeMBytes"},
		{path: "broken", body: gz([]byte("up 1\n"))[:12], status: 502, want: "invalid gzip"},
	}
	for _, tt := range tests {
		res := scrapeAsync(p, "/"+tt.path, nil)
		req := fa.nextScrape()
		f := frame(req.GetScrapeId(), tt.body)
		f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentEncoding: "gzip", ContentLength: int64(len(tt.body))}
		f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(tt.body)), BodyCrc32: crc32.ChecksumIEEE(tt.body)}
		fa.send(f)
		r := wait(t, res)
		if r.status != tt.status || !strings.Contains(r.body, tt.want) {
			t.Errorf("%s: got %d %.80q, want %d with %q", tt.path, r.status, r.body, tt.status, tt.want)
		}
	}
}

func TestFrameBeyondCreditEndsSession(t *testing.T) {
	t.Parallel()
	p := runProxy(t, func(o *server.Options) { o.ScrapeCredit = 2 })
	fa := register(t, p, "a", false, "app")
	// A client that never reads the body stops the proxy from consuming
	// frames, so the frames beyond the credit pile up at the proxy.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+p.Addr().String()+"/app", nil)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			<-t.Context().Done()
			resp.Body.Close()
		}
	}()
	sr := fa.nextScrape()
	chunk := bytes.Repeat([]byte("x"), 256<<10)
	for i := range 64 {
		f := frame(sr.GetScrapeId(), chunk)
		if i == 0 {
			f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: -1}
		}
		if err := fa.stream.Send(f); err != nil {
			break // the proxy ended the session
		}
	}
	for {
		if _, err := fa.recv(); err != nil {
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "credit") {
				t.Fatalf("session ended with %v, want invalid_argument about credit", err)
			}
			return
		}
	}
}

func TestFirstMessageMustRegister(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa, err := dialAgent(t, p)
	if err != nil {
		t.Fatal(err)
	}
	fa.send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}})
	_, err = fa.recv()
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "RegisterAgent") {
		t.Fatalf("err = %v, want invalid_argument naming RegisterAgent", err)
	}
}

func TestHeartbeatEchoedAndStaleAgentEvicted(t *testing.T) {
	t.Parallel()
	p := runProxy(t, func(o *server.Options) {
		o.MaxAgentInactivity = 300 * time.Millisecond
		o.StaleAgentCheckInterval = 50 * time.Millisecond
	})
	fa := register(t, p, "a", false, "app")
	fa.send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}})
	m, err := fa.recv()
	if err != nil || m.GetHeartbeat() == nil {
		t.Fatalf("heartbeat not echoed: %v %v", m, err)
	}
	// Now stay silent: the proxy must end the session.
	start := time.Now()
	for {
		_, err := fa.recv()
		if err != nil {
			if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
				t.Fatalf("session ended with %v, want deadline_exceeded (evicted)", err)
			}
			break
		}
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("eviction took %v", el)
	}
	r := wait(t, scrapeAsync(p, "/app", nil))
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("scrape of an evicted agent's path: %d %q, want 503", r.status, r.body)
	}
}

func TestDisplacedAgentIsTold(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	old := register(t, p, "old", false, "app")
	register(t, p, "new", false, "app")
	for {
		m, err := old.recv()
		if err != nil {
			t.Fatal(err)
		}
		if d := m.GetPathDisplaced(); d != nil {
			if d.GetPath() != "app" || d.GetNewAgentName() != "new" {
				t.Fatalf("displaced %+v", d)
			}
			return
		}
	}
}

func TestMultiFrameBodyLeavesInFewWrites(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "app")

	conn, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /app HTTP/1.1\r\nHost: proxy\r\nAccept-Encoding: gzip\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Sixteen frames (the default credit) of 15 KiB, of a body whose
	// length the target did not declare and too long to hold whole, so
	// that the proxy must send it chunked; each write of the proxy shows
	// as one chunk on the wire.
	body := bytes.Repeat([]byte("metric_with_a_long_name{label=\"value\"} 1\n"), 6000)[:240<<10]
	const chunk = 15 << 10
	sendFrames(fa, fa.nextScrape().GetScrapeId(), body, chunk, crc32.ChecksumIEEE(body))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("status line %q, err %v", status, err)
	}
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		chunked = chunked || strings.EqualFold(strings.TrimSpace(line), "Transfer-Encoding: chunked")
	}
	if !chunked {
		t.Fatal("the answer is not chunked; the test needs a body of unknown length")
	}
	// Decode the chunked encoding by hand, counting its chunks: each is
	// one write of the proxy.
	var got []byte
	chunks := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil {
			t.Fatalf("chunk size line %q: %v", line, err)
		}
		if size == 0 {
			break
		}
		chunks++
		data := make([]byte, size+2)
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		got = append(got, data[:size]...)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("body of %d bytes differs from the %d the agent sent", len(got), len(body))
	}
	// One write per 128 KiB gathered.
	if chunks > 2 {
		t.Fatalf("the proxy wrote a body of %d frames (%d bytes) in %d writes, want 2", len(body)/chunk, len(body), chunks)
	}
}

// TestMultiFrameBodyHeldWholeWhenSmall checks that a body of several frames
// that fits in one batch is verified whole before the proxy commits to a
// status, as a single-frame body is: intact, it leaves with a
// Content-Length; damaged, Prometheus gets a clean 502 that says why, not a
// broken transfer.
func TestMultiFrameBodyHeldWholeWhenSmall(t *testing.T) {
	t.Parallel()
	p := runProxy(t, nil)
	fa := register(t, p, "a", false, "app")
	body := bytes.Repeat([]byte("metric_with_a_long_name{label=\"value\"} 1\n"), 1000)[:36<<10]
	for _, intact := range []bool{true, false} {
		res := scrapeAsync(p, "/app", http.Header{"Accept-Encoding": {"gzip"}})
		crc := crc32.ChecksumIEEE(body)
		if !intact {
			crc++
		}
		sendFrames(fa, fa.nextScrape().GetScrapeId(), body, 12<<10, crc)
		r := <-res
		switch {
		case r.err != nil:
			t.Errorf("intact=%v: %v; want a complete answer", intact, r.err)
		case intact && (r.status != http.StatusOK || r.body != string(body) || r.header.Get("Content-Length") != strconv.Itoa(len(body))):
			t.Errorf("intact body: %d, %d bytes, Content-Length %q; want 200 with the %d bytes and their length",
				r.status, len(r.body), r.header.Get("Content-Length"), len(body))
		case !intact && (r.status != http.StatusBadGateway || !strings.Contains(r.body, "checksum")):
			t.Errorf("damaged body: %d %.200q; want 502 naming the checksum", r.status, r.body)
		}
	}
}

// sendFrames answers scrape id with body in frames of chunk bytes (body's
// length must be a multiple of it), as a target that declared no length,
// with crc as the trailer's checksum of the whole.
func sendFrames(fa *fakeAgent, id uint64, body []byte, chunk int, crc uint32) {
	for off := 0; off < len(body); off += chunk {
		f := frame(id, body[off:off+chunk])
		sr := f.GetScrapeResult()
		if off == 0 {
			sr.Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: -1, ContentType: "text/plain"}
		}
		if off+chunk == len(body) {
			sr.Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc}
		}
		fa.send(f)
	}
}
