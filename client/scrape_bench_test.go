package client_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

// BenchmarkScrapeRoundTrip is one scrape through a real agent in process: a
// ScrapeRequest arrives on the session, the agent fetches its target over
// HTTP and streams the body back in checksummed frames. The proxy is a
// protocol-level stand-in that only routes frames, so the figures are the
// agent's own cost plus the target's.
func BenchmarkScrapeRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		gzip bool // the target gzips itself
		conc int
	}{
		{name: "10KB-gzip-c1", size: 10 << 10, gzip: true, conc: 1},
		{name: "10KB-gzip-c8", size: 10 << 10, gzip: true, conc: 8},
		{name: "10KB-plain-c8", size: 10 << 10, conc: 8},
		{name: "1MB-gzip-c8", size: 1 << 20, gzip: true, conc: 8},
		{name: "1MB-plain-c8", size: 1 << 20, conc: 8},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := exposition(bc.size)
			wire := body
			if bc.gzip {
				wire = gzipped(body)
			}
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; version=0.0.4")
				if bc.gzip {
					w.Header().Set("Content-Encoding", "gzip")
				}
				_, _ = w.Write(wire)
			}))
			b.Cleanup(target.Close)
			bp := startBenchProxy(b)
			a, err := client.New(func() client.Options {
				o := client.DefaultOptions()
				o.ProxyURLs = []string{bp.addr}
				o.AgentName = "bench"
				o.Paths = []client.PathConfig{{Name: "t", Path: "t", URL: target.URL + "/metrics"}}
				o.MaxConcurrentClients = bc.conc
				o.Logger = slog.New(slog.DiscardHandler)
				return o
			}())
			if err != nil {
				b.Fatal(err)
			}
			if err := a.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = a.Close() })
			s := bp.session(b)

			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			// CPU time per scrape, unlike ns/op, hardly moves when other
			// processes compete for the machine.
			cpu0 := processCPU()
			defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
			if bc.conc == 1 {
				for b.Loop() {
					s.scrape(b, "t")
				}
				return
			}
			b.SetParallelism(max(1, bc.conc/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.scrape(b, "t")
				}
			})
		})
	}
}

// benchProxy accepts one agent session for a benchmark.
type benchProxy struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
	addr     string
	sessions chan *benchSession
}

// benchSession routes result frames to the scrapes waiting for them.
type benchSession struct {
	stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]
	sendMu sync.Mutex
	nextID atomic.Uint64

	mu      sync.Mutex
	waiting map[uint64]chan *promproxyv1.ScrapeResult
	paths   chan struct{}
}

func startBenchProxy(b *testing.B) *benchProxy {
	b.Helper()
	bp := &benchProxy{sessions: make(chan *benchSession, 1)}
	mux := http.NewServeMux()
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(bp))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := transport.NewServer(mux, nil, transport.DefaultKeepalive)
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	bp.addr = ln.Addr().String()
	return bp
}

func (bp *benchProxy) Session(ctx context.Context, stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	if _, err := stream.Receive(); err != nil {
		return err
	}
	s := &benchSession{stream: stream, waiting: map[uint64]chan *promproxyv1.ScrapeResult{}, paths: make(chan struct{}, 16)}
	if err := s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{RegisterAgentResult: &promproxyv1.RegisterAgentResult{AgentId: "bench"}}}); err != nil {
		return err
	}
	bp.sessions <- s
	for {
		m, err := stream.Receive()
		if err != nil {
			return nil
		}
		switch m := m.GetMsg().(type) {
		case *promproxyv1.SessionRequest_RegisterPath:
			_ = s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterPathResult{RegisterPathResult: &promproxyv1.RegisterPathResult{Path: m.RegisterPath.GetPath(), Accepted: true}}})
			s.paths <- struct{}{}
		case *promproxyv1.SessionRequest_ScrapeResult:
			s.mu.Lock()
			ch := s.waiting[m.ScrapeResult.GetScrapeId()]
			s.mu.Unlock()
			if ch != nil {
				ch <- m.ScrapeResult
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// session waits for the agent's session with its path registered.
func (bp *benchProxy) session(b *testing.B) *benchSession {
	s := <-bp.sessions
	<-s.paths
	return s
}

func (s *benchSession) send(m *promproxyv1.SessionResponse) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.stream.Send(m)
}

// scrape asks the agent for path and checks the frames it gets back,
// granting credit as they arrive.
func (s *benchSession) scrape(b *testing.B, path string) {
	const credit = 16
	id := s.nextID.Add(1)
	ch := make(chan *promproxyv1.ScrapeResult, credit+1)
	s.mu.Lock()
	s.waiting[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.waiting, id)
		s.mu.Unlock()
	}()
	if err := s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeRequest{ScrapeRequest: &promproxyv1.ScrapeRequest{
		ScrapeId: id, Path: path, InitialCredit: credit, AcceptGzip: true,
	}}}); err != nil {
		b.Fatal(err)
	}
	var crc uint32
	var n int64
	for owed := uint32(0); ; {
		f := <-ch
		if crc32.ChecksumIEEE(f.GetChunk()) != f.GetChunkCrc32() {
			b.Fatal("chunk checksum mismatch")
		}
		crc = crc32.Update(crc, crc32.IEEETable, f.GetChunk())
		n += int64(len(f.GetChunk()))
		if t := f.GetTrailer(); t != nil {
			if t.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED || t.GetBodyCrc32() != crc || t.GetBodyLength() != n {
				b.Fatalf("bad trailer %v after %d bytes", t, n)
			}
			return
		}
		if owed++; owed == credit/2 {
			if err := s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCredit{ScrapeCredit: &promproxyv1.ScrapeCredit{ScrapeId: id, Frames: owed}}}); err != nil {
				b.Fatal(err)
			}
			owed = 0
		}
	}
}

// exposition is text exposition of about n bytes.
func exposition(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		if i%50 == 0 {
			fmt.Fprintf(&b, "# HELP family_%d_total A counter.\n# TYPE family_%d_total counter\n", i/50, i/50)
		}
		fmt.Fprintf(&b, "family_%d_total{handler=\"/api/v1/query\",code=\"200\",shard=\"%d\"} %d.%d\n", i/50, i%50, i*7919, i%997)
	}
	return b.Bytes()
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
