package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// soakPath is one path served through the proxy.
type soakPath struct {
	name   string
	stable bool // served by an agent that is never killed
}

// tally counts scrape outcomes of one class of paths.
type tally struct {
	total   int
	ok      int
	byKind  map[string]int
	slowest time.Duration
}

// loadStats is the outcome of every scrape of the run.
type loadStats struct {
	mu      sync.Mutex
	classes map[string]*tally // "stable", "churn"
	wrong   []string          // the first wrong bodies, for the report
	behind  atomic.Int64      // ticks skipped because every worker was busy
}

func newLoadStats() *loadStats {
	return &loadStats{classes: map[string]*tally{"stable": {byKind: map[string]int{}}, "churn": {byKind: map[string]int{}}}}
}

func (s *loadStats) record(p soakPath, kind string, took time.Duration, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	class := "churn"
	if p.stable {
		class = "stable"
	}
	t := s.classes[class]
	t.total++
	t.slowest = max(t.slowest, took)
	if kind == "ok" {
		t.ok++
		return
	}
	t.byKind[kind]++
	if kind == "wrong_body" && len(s.wrong) < 20 {
		s.wrong = append(s.wrong, p.name+": "+detail)
	}
}

// wrongBodies is how many bodies failed verification.
func (s *loadStats) wrongBodies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.classes["stable"].byKind["wrong_body"] + s.classes["churn"].byKind["wrong_body"]
}

// runLoad scrapes the proxy rate times a second, spread over paths, until
// ctx ends.
func runLoad(ctx context.Context, scrapeAddr string, paths []soakPath, rate float64, workers int, stats *loadStats) {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for n := range jobs {
				p := paths[n%len(paths)]
				kind, took, detail := scrapeOnce(c, "http://"+scrapeAddr+"/"+p.name, p.name, n%2 == 0)
				stats.record(p, kind, took, detail)
			}
		})
	}
	tk := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tk.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return
		case <-tk.C:
			select {
			case jobs <- n:
			default:
				stats.behind.Add(1)
			}
		}
	}
}

// scrapeOnce scrapes url like Prometheus and classifies the answer.
func scrapeOnce(c *http.Client, url, path string, gz bool) (kind string, took time.Duration, detail string) {
	start := time.Now()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "10")
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := c.Do(req)
	if err != nil {
		return "request_error", time.Since(start), err.Error()
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	took = time.Since(start)
	if err != nil {
		// A broken transfer is how the proxy reports a body that failed
		// after its status was sent: a failure, but never a wrong body.
		return "broken_transfer", took, err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status_%d", resp.StatusCode), took, string(raw)
	}
	body := raw
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			return "wrong_body", took, "gzip: " + err.Error()
		}
	}
	if err := verifyBody(path, body); err != nil {
		return "wrong_body", took, err.Error()
	}
	return "ok", took, ""
}

// kinds lists a tally's failure kinds in a stable order.
func (t *tally) kinds() []string {
	var ks []string
	for k := range t.byKind {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
