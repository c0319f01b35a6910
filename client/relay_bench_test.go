package client

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

// BenchmarkRelay measures the agent's chunk encoding alone: a target's
// answer read, gzipped where the target did not, cut into chunks with their
// CRC-32s, and marshalled into the protocol messages that go on the wire.
// The HTTP/2 transport and the target are left out; the round-trip
// benchmark has them.
func BenchmarkRelay(b *testing.B) {
	opts := DefaultOptions()
	for _, bc := range []struct {
		name string
		size int
		gz   bool // the target gzips its answer itself
	}{
		{"10KB-gzip", 10 << 10, true},
		{"10KB-plain", 10 << 10, false},
		{"1MB-gzip", 1 << 20, true},
		{"1MB-plain", 1 << 20, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := relayExposition(bc.size)
			if bc.gz {
				var zb bytes.Buffer
				zw := gzip.NewWriter(&zb)
				_, _ = zw.Write(body)
				_ = zw.Close()
				body = zb.Bytes()
			}
			s := &session{ctx: b.Context(), out: make(chan outbound, 1024)}
			wire := make(chan int64)
			go func() {
				var n int64
				var buf []byte
				for o := range s.out {
					var err error
					if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], o.msg); err != nil {
						panic(err)
					}
					n += int64(len(buf))
					if o.release != nil {
						o.release()
					}
				}
				wire <- n
			}()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				resp := &http.Response{StatusCode: http.StatusOK, ContentLength: -1,
					Header: http.Header{"Content-Type": {"text/plain; version=0.0.4"}},
					Body:   io.NopCloser(bytes.NewReader(body))}
				if bc.gz {
					resp.Header.Set("Content-Encoding", "gzip")
				}
				e := &emitter{s: s, ctx: s.ctx, id: 1, credit: newCredit(1 << 30), chunkSize: opts.ChunkSize}
				if f, msg := e.relay(resp, 1<<30, !opts.GzipDisabled, opts.MinGzipSize); f != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
					b.Fatalf("%v: %s", f, msg)
				}
			}
			close(s.out)
			if n := <-wire; n == 0 {
				b.Fatal("nothing reached the wire")
			}
		})
	}
}

// relayExposition is n bytes of exposition text shaped like an exporter's:
// HELP and TYPE every 50 samples, labels, floats.
func relayExposition(n int) []byte {
	var bb bytes.Buffer
	for i := 0; bb.Len() < n; i++ {
		if i%50 == 0 {
			fmt.Fprintf(&bb, "# HELP relay_metric_%d A metric of the relay benchmark.\n# TYPE relay_metric_%d gauge\n", i/50, i/50)
		}
		fmt.Fprintf(&bb, "relay_metric_%d{instance=\"host-%d\",job=\"node\"} %g\n", i/50, i%50, float64(i)*1.37e3)
	}
	return bb.Bytes()[:n]
}
