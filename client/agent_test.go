package client_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func target(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func checkIntegrity(t *testing.T, body []byte, tr *promproxyv1.ScrapeTrailer) {
	t.Helper()
	if tr.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
		t.Fatalf("scrape failed: %v %s", tr.GetFailure(), tr.GetMessage())
	}
	if tr.GetBodyLength() != int64(len(body)) || tr.GetBodyCrc32() != crc32.ChecksumIEEE(body) {
		t.Fatalf("trailer %d/%08x does not match body %d/%08x", tr.GetBodyLength(), tr.GetBodyCrc32(), len(body), crc32.ChecksumIEEE(body))
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScrapeForwardsHeadersAndQuery(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.WriteHeader(299)
		_, _ = io.WriteString(w, "up 1\n")
	})
	fp := startFakeProxy(t)
	startAgent(t, []string{fp.addr}, []client.PathConfig{{Path: "app", URL: tg.URL + "/metrics?fixed=1"}}, nil)
	s := fp.accept(t)
	s.acceptPaths(1)
	req := scrapeReq(7, "app", 4)
	sr := req.GetScrapeRequest()
	sr.Query, sr.Accept, sr.Authorization = "match[]=up", "application/openmetrics-text", "Bearer tok"
	s.send(req)
	hdr, body, tr, _ := s.result(7)
	checkIntegrity(t, body, tr)
	if hdr.GetStatusCode() != 299 || hdr.GetContentType() != "text/plain; version=0.0.4" || string(body) != "up 1\n" {
		t.Fatalf("header %v body %q", hdr, body)
	}
	r := <-got
	if r.URL.RawQuery != "fixed=1&match[]=up" {
		t.Errorf("query %q", r.URL.RawQuery)
	}
	if r.Header.Get("Accept") != "application/openmetrics-text" || r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Accept-Encoding") != "gzip" {
		t.Errorf("headers %v", r.Header)
	}
	if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") == "" {
		t.Error("no scrape timeout header sent to the target")
	}
}

func TestScrapeBodies(t *testing.T) {
	t.Parallel()
	var bb bytes.Buffer
	for i := 0; bb.Len() < 2<<20; i++ {
		fmt.Fprintf(&bb, "metric_x{instance=\"%d\"} %d\n", i*7919%100003, i*104729%1000003)
	}
	big := bb.Bytes()
	small := []byte(strings.Repeat("m 1\n", 300)) // 1.2 KB
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = w.Write(small)
		case "/tiny":
			_, _ = w.Write([]byte("m 1\n"))
		case "/big":
			_, _ = w.Write(big)
		case "/selfgzip":
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = zw.Write(big)
			_ = zw.Close()
		}
	})
	fp := startFakeProxy(t)
	startAgent(t, []string{fp.addr}, []client.PathConfig{
		{Path: "small", URL: tg.URL + "/small"},
		{Path: "tiny", URL: tg.URL + "/tiny"},
		{Path: "big", URL: tg.URL + "/big"},
		{Path: "selfgzip", URL: tg.URL + "/selfgzip"},
	}, nil)
	s := fp.accept(t)
	s.acceptPaths(4)
	tests := []struct {
		path      string
		want      []byte
		encoding  string
		minFrames int
	}{
		{path: "tiny", want: []byte("m 1\n"), encoding: "", minFrames: 1},
		{path: "small", want: small, encoding: "gzip", minFrames: 1},
		{path: "big", want: big, encoding: "gzip", minFrames: 2},
		{path: "selfgzip", want: big, encoding: "gzip", minFrames: 2},
	}
	for i, tt := range tests {
		id := uint64(100 + i)
		s.send(scrapeReq(id, tt.path, 1000))
		hdr, body, tr, frames := s.result(id)
		checkIntegrity(t, body, tr)
		if hdr.GetContentEncoding() != tt.encoding || frames < tt.minFrames {
			t.Fatalf("%s: encoding %q frames %d, want %q and >= %d", tt.path, hdr.GetContentEncoding(), frames, tt.encoding, tt.minFrames)
		}
		if hdr.GetContentLength() >= 0 && hdr.GetContentLength() != int64(len(body)) {
			t.Fatalf("%s: declared %d, sent %d", tt.path, hdr.GetContentLength(), len(body))
		}
		if tt.encoding == "gzip" {
			body = gunzip(t, body)
		}
		if !bytes.Equal(body, tt.want) {
			t.Fatalf("%s: body differs", tt.path)
		}
	}
}

func TestScrapeRespectsCredit(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("z"), 1<<20)
	tg := target(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) })
	fp := startFakeProxy(t)
	startAgent(t, []string{fp.addr}, []client.PathConfig{{Path: "big", URL: tg.URL}}, func(o *client.Options) {
		o.GzipDisabled = true
		o.HeartbeatInterval = 50 * time.Millisecond
	})
	s := fp.accept(t)
	s.acceptPaths(1)
	s.send(scrapeReq(1, "big", 2))
	var body []byte
	for frames := 0; frames < 2; {
		if r := s.recv().GetScrapeResult(); r != nil {
			frames++
			body = append(body, r.GetChunk()...)
		}
	}
	// Out of credit, the agent is idle: its next message is a heartbeat.
	for {
		m := s.recv()
		if m.GetHeartbeat() != nil {
			break
		}
		if m.GetScrapeResult() != nil {
			t.Fatal("agent sent a frame beyond its credit")
		}
	}
	s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCredit{ScrapeCredit: &promproxyv1.ScrapeCredit{ScrapeId: 1, Frames: 1000}}})
	_, rest, tr, _ := s.result(1)
	body = append(body, rest...)
	checkIntegrity(t, body, tr)
	if !bytes.Equal(body, big) {
		t.Fatal("body differs")
	}
}

func TestScrapeFailures(t *testing.T) {
	t.Parallel()
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared-large":
			w.Header().Set("Content-Length", "5000000")
			_, _ = w.Write(make([]byte, 5000000))
		case "/endless":
			buf := make([]byte, 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		case "/hang":
			<-r.Context().Done()
		case "/brotli":
			w.Header().Set("Content-Encoding", "br")
			_, _ = w.Write([]byte("xx"))
		}
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + closed.Addr().String()
	closed.Close()
	fp := startFakeProxy(t)
	startAgent(t, []string{fp.addr}, []client.PathConfig{
		{Path: "declared", URL: tg.URL + "/declared-large"},
		{Path: "endless", URL: tg.URL + "/endless"},
		{Path: "hang", URL: tg.URL + "/hang"},
		{Path: "brotli", URL: tg.URL + "/brotli"},
		{Path: "dead", URL: deadURL},
	}, func(o *client.Options) { o.MaxContentLength = 1 << 20 })
	s := fp.accept(t)
	s.acceptPaths(5)
	tests := []struct {
		path    string
		timeout time.Duration
		want    promproxyv1.ScrapeFailure
	}{
		{path: "declared", want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE},
		{path: "endless", want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE},
		{path: "hang", timeout: 200 * time.Millisecond, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_TIMEOUT},
		{path: "brotli", want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_ERROR},
		{path: "dead", want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_ERROR},
		{path: "../../etc/passwd", want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND},
		{path: "http://example.com/", want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND},
	}
	for i, tt := range tests {
		id := uint64(i + 1)
		req := scrapeReq(id, tt.path, 1000)
		if tt.timeout > 0 {
			req.GetScrapeRequest().Timeout = durationpbNew(tt.timeout)
		}
		start := time.Now()
		s.send(req)
		_, _, tr, _ := s.result(id)
		if tr.GetFailure() != tt.want || tr.GetMessage() == "" {
			t.Errorf("%s: failure %v %q, want %v with a message", tt.path, tr.GetFailure(), tr.GetMessage(), tt.want)
		}
		if tt.timeout > 0 && time.Since(start) > 10*tt.timeout {
			t.Errorf("%s: took %v with a %v timeout", tt.path, time.Since(start), tt.timeout)
		}
	}
}

func TestCancelReachesTarget(t *testing.T) {
	t.Parallel()
	started, cancelled := make(chan struct{}), make(chan struct{})
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(cancelled)
	})
	fp := startFakeProxy(t)
	startAgent(t, []string{fp.addr}, []client.PathConfig{{Path: "slow", URL: tg.URL}}, nil)
	s := fp.accept(t)
	s.acceptPaths(1)
	s.send(scrapeReq(9, "slow", 4))
	<-started
	s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCancel{ScrapeCancel: &promproxyv1.ScrapeCancel{ScrapeId: 9}}})
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not reach the target request")
	}
}

func TestFailoverAndReturnToPrimary(t *testing.T) {
	t.Parallel()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	fp := startFakeProxy(t)
	a := startAgent(t, []string{deadAddr, fp.addr}, nil, nil)
	s := fp.accept(t)
	if !waitCond(5*time.Second, a.Connected) {
		t.Fatal("agent never connected to the second proxy")
	}
	// A proxy going away sends the agent on to the next proxy in the list,
	// which here is the (dead) primary and then this one again.
	s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_GoingAway{GoingAway: &promproxyv1.GoingAway{Reason: "test"}}})
	s.end <- nil
	fp.accept(t)
}

func TestShutdownUnregistersPaths(t *testing.T) {
	t.Parallel()
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {})
	fp := startFakeProxy(t)
	a := startAgent(t, []string{fp.addr}, []client.PathConfig{{Path: "a", URL: tg.URL}, {Path: "b", URL: tg.URL}}, nil)
	s := fp.accept(t)
	s.acceptPaths(2)
	done := make(chan error, 1)
	go func() { done <- a.Shutdown(context.Background()) }()
	unregistered := map[string]bool{}
	for len(unregistered) < 2 {
		m, err := s.recvErr()
		if err != nil {
			t.Fatalf("after %v unregistered: %v", unregistered, err)
		}
		if u := m.GetUnregisterPath(); u != nil {
			unregistered[u.GetPath()] = true
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := s.recvErr(); err != errSessionClosed {
		t.Fatalf("stream not closed after shutdown: %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*client.Options)
		want   string
	}{
		{"no proxy", func(o *client.Options) { o.ProxyURLs = nil }, "ProxyURLs"},
		{"bad path", func(o *client.Options) { o.Paths = []client.PathConfig{{Path: "a/b", URL: "http://x"}} }, "Paths[0].Path"},
		{"duplicate path", func(o *client.Options) {
			o.Paths = []client.PathConfig{{Path: "a", URL: "http://x"}, {Path: "a", URL: "http://y"}}
		}, "listed twice"},
		{"bad url", func(o *client.Options) { o.Paths = []client.PathConfig{{Path: "a", URL: "ftp://x"}} }, "Paths[0].URL"},
		{"url secrets redacted", func(o *client.Options) {
			o.Paths = []client.PathConfig{{Path: "a", URL: "ftp://user:hunter2@x/?token=abc"}}
		}, "REDACTED"},
		{"zero timeout", func(o *client.Options) { o.ScrapeTimeout = 0 }, "ScrapeTimeout"},
		{"tiny chunk", func(o *client.Options) { o.ChunkSize = 10 }, "ChunkSize"},
		{"https without tls", func(o *client.Options) { o.ProxyURLs = []string{"https://p:1"} }, "TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := client.DefaultOptions()
			tt.mutate(&o)
			_, err := client.New(o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "abc") {
				t.Fatalf("error leaks a secret: %v", err)
			}
		})
	}
}

func waitCond(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
