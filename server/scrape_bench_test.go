package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/server"
)

// BenchmarkScrapeRoundTrip is one scrape through a real proxy in process:
// an HTTP request in, a ScrapeRequest down the agent's stream, the result
// frames back, the body out. The agent is a protocol-level stand-in that
// answers from memory, so the figures are the proxy's own cost.
func BenchmarkScrapeRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
		conc int
	}{
		{name: "10KB-gzip-c1", size: 10 << 10, conc: 1},
		{name: "10KB-gzip-c8", size: 10 << 10, conc: 8},
		{name: "1MB-gzip-c8", size: 1 << 20, conc: 8},
	} {
		b.Run(bc.name, func(b *testing.B) {
			gz := gzipped(exposition(bc.size))
			p := benchProxy(b)
			benchAgent(b, p, "bench", gz, 32<<10)
			url := "http://" + p.Addr().String() + "/bench"
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: bc.conc, DisableCompression: true}}
			b.Cleanup(hc.CloseIdleConnections)
			b.SetBytes(int64(len(gz)))
			b.ReportAllocs()
			scrape := func(buf *bytes.Buffer) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				buf.Reset()
				_, err = buf.ReadFrom(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(buf.Bytes(), gz) {
					b.Fatalf("status %d, %d bytes, err %v: not the agent's body", resp.StatusCode, buf.Len(), err)
				}
			}
			// CPU time per scrape, unlike ns/op, hardly moves when other
			// processes compete for the machine.
			cpu0 := processCPU()
			defer func() { b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
			if bc.conc == 1 {
				var buf bytes.Buffer
				for b.Loop() {
					scrape(&buf)
				}
				return
			}
			b.SetParallelism(max(1, bc.conc/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				var buf bytes.Buffer
				for pb.Next() {
					scrape(&buf)
				}
			})
		})
	}
}

func benchProxy(b *testing.B) *server.Proxy {
	b.Helper()
	opts := server.DefaultOptions()
	opts.ListenAddr, opts.AgentListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	opts.Logger = slog.New(slog.DiscardHandler)
	opts.Registerer = prometheus.NewRegistry()
	p, err := server.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("Run: %v", err)
		}
	})
	return p
}

// benchAgent registers path on p and answers every scrape with body, in
// frames of chunk bytes, within the credit the proxy grants.
func benchAgent(b *testing.B, p *server.Proxy, path string, body []byte, chunk int) {
	b.Helper()
	hc := &http.Client{Transport: transport.WholeMessages(transport.NewClientTransport(nil, transport.DefaultKeepalive))}
	c := promproxyv1connect.NewProxyServiceClient(hc, "http://"+p.AgentAddr().String(), connect.WithGRPC())
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Session(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	b.Cleanup(func() {
		cancel()
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
		wg.Wait()
		hc.CloseIdleConnections()
	})
	must := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	must(stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{AgentName: "bench"}}}))
	_, err = stream.Receive()
	must(err)
	must(stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterPath{RegisterPath: &promproxyv1.RegisterPath{Path: path}}}))
	if m, err := stream.Receive(); err != nil || !m.GetRegisterPathResult().GetAccepted() {
		b.Fatalf("registering %q: %v %v", path, m, err)
	}

	hdr := &promproxyv1.ScrapeHeader{StatusCode: 200, ContentType: "text/plain; version=0.0.4", ContentEncoding: "gzip", ContentLength: int64(len(body))}
	trailer := &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE(body)}
	var chunks [][]byte
	var sums []uint32
	for off := 0; off < len(body); off += chunk {
		c := body[off:min(off+chunk, len(body))]
		chunks, sums = append(chunks, c), append(sums, crc32.ChecksumIEEE(c))
	}
	var sendMu, creditMu sync.Mutex
	credits := map[uint64]chan uint32{}
	serve := func(id uint64, credit uint32, more chan uint32) {
		defer func() {
			creditMu.Lock()
			delete(credits, id)
			creditMu.Unlock()
		}()
		for i, c := range chunks {
			for credit == 0 {
				select {
				case n := <-more:
					credit += n
				case <-ctx.Done():
					return
				}
			}
			credit--
			r := &promproxyv1.ScrapeResult{ScrapeId: id, Chunk: c, ChunkCrc32: sums[i]}
			if i == 0 {
				r.Header = hdr
			}
			if i == len(chunks)-1 {
				r.Trailer = trailer
			}
			sendMu.Lock()
			err := stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_ScrapeResult{ScrapeResult: r}})
			sendMu.Unlock()
			if err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			m, err := stream.Receive()
			if err != nil {
				return
			}
			switch m := m.GetMsg().(type) {
			case *promproxyv1.SessionResponse_ScrapeRequest:
				more := make(chan uint32, 64)
				creditMu.Lock()
				credits[m.ScrapeRequest.GetScrapeId()] = more
				creditMu.Unlock()
				wg.Go(func() { serve(m.ScrapeRequest.GetScrapeId(), m.ScrapeRequest.GetInitialCredit(), more) })
			case *promproxyv1.SessionResponse_ScrapeCredit:
				creditMu.Lock()
				more := credits[m.ScrapeCredit.GetScrapeId()]
				creditMu.Unlock()
				if more != nil {
					more <- m.ScrapeCredit.GetFrames()
				}
			}
		}
	})
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
	_, _ = io.Copy(zw, bytes.NewReader(b))
	_ = zw.Close()
	return out.Bytes()
}

// processCPU is the user plus system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
