package server

import (
	"fmt"
	"io"
	"testing"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

// benchBody is exposition-like text of n bytes.
func benchBody(n int) []byte {
	b := make([]byte, 0, n+64)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "http_requests_total{handler=\"/api/v1/query\",code=\"200\",shard=\"%d\"} %d.%d\n", i%50, i*7919, i%997)
	}
	return b[:n]
}

// BenchmarkBodyStream reassembles a body from its frames, verifying every
// chunk and the trailer, and writes it out: the proxy's work per frame.
func BenchmarkBodyStream(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		chunk int
	}{
		{name: "10KB-1frame", size: 10 << 10, chunk: 32 << 10},
		{name: "1MB-32KBchunks", size: 1 << 20, chunk: 32 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fs := frames(benchBody(bc.size), bc.chunk)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			for b.Loop() {
				n, err := streamOf(fs, int64(bc.size)).WriteTo(io.Discard)
				if err != nil || n != int64(bc.size) {
					b.Fatalf("wrote %d bytes, err %v", n, err)
				}
			}
		})
	}
}

// BenchmarkRegistryLookup is the path table lookup every scrape does, with
// 10,000 paths and all cores reading at once.
func BenchmarkRegistryLookup(b *testing.B) {
	r := newRegistry()
	const n = 10000
	paths := make([]string, n)
	for i := range n {
		c := newAgentConn(fmt.Sprint(i), &promproxyv1.RegisterAgent{AgentName: fmt.Sprint("agent-", i)}, "127.0.0.1:1")
		r.addAgent(c)
		paths[i] = fmt.Sprint("app_", i, "_metrics")
		if res := r.registerPath(c, paths[i], nil); !res.accepted {
			b.Fatal(res.reason)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, _, ok, _ := r.lookup(paths[i%n]); !ok {
				b.Fatal("path not found")
			}
			i += 7
		}
	})
}
