package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchConcurrency is how many scrapes run at once, as a Prometheus
// scraping several paths of one proxy would.
const benchConcurrency = 8

// BenchmarkScrapeDirectVsProxied scrapes the same target directly and
// through the built proxy and agent, in one run, and reports the proxied
// cost per scrape with the ratio to the direct one. The client behaves like
// Prometheus: it accepts gzip and decompresses what it gets. The target, like
// many exporters, does not compress, so proxied scrapes carry the agent's
// gzip and direct ones carry plain bytes.
func BenchmarkScrapeDirectVsProxied(b *testing.B) {
	sizes := []struct {
		name string
		size int
	}{
		{name: "10KB", size: 10 << 10},
		{name: "1MB", size: 1 << 20},
	}
	bodies := map[string][]byte{}
	var paths []pathConfig
	target := newTarget(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(bodies[r.URL.Path])
	})
	for _, s := range sizes {
		bodies["/"+s.name] = exposition(s.size)
		paths = append(paths, pathConfig{name: s.name, path: "bench_" + s.name, url: target.URL + "/" + s.name})
	}
	tun := startTunnel(b, paths)
	tr := &http.Transport{MaxIdleConnsPerHost: benchConcurrency}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}

	for i, s := range sizes {
		want := bodies["/"+s.name]
		b.Run(fmt.Sprintf("size=%s/concurrency=%d", s.name, benchConcurrency), func(b *testing.B) {
			direct := scrapeMany(b, c, paths[i].url, want, b.N)
			proxied := scrapeMany(b, c, tun.proxy.url(paths[i].path), want, b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "direct-ns/op")
			b.ReportMetric(float64(proxied.Nanoseconds())/float64(b.N), "proxied-ns/op")
			b.ReportMetric(float64(proxied)/float64(direct), "proxied/direct")
		})
	}
}

// scrapeMany makes n scrapes of url, benchConcurrency at a time, checks
// every body, and returns the wall time they took.
func scrapeMany(b *testing.B, c *http.Client, url string, want []byte, n int) time.Duration {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConcurrency {
		wg.Go(func() {
			var buf bytes.Buffer
			for next.Add(1) <= int64(n) && failed.Load() == nil {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
				resp, err := c.Do(req)
				if err != nil {
					failed.Store(err)
					return
				}
				buf.Reset()
				_, err = io.Copy(&buf, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(buf.Bytes(), want) {
					failed.Store(fmt.Errorf("scrape of %s: status %d, %d bytes, err %v", url, resp.StatusCode, buf.Len(), err))
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	return took
}
