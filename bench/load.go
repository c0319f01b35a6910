package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// reference is the body a scrape must return, taken from a direct scrape
// of the target at the start of the run.
type reference struct {
	plain []byte
	// gz is the target's own gzip encoding, or nil when the target never
	// compresses. A proxied gzip body must be these very bytes: anything
	// else means the body was recompressed on the way.
	gz []byte
}

// newLoadClient returns a Prometheus-like HTTP/1.1 client: one keep-alive
// connection per concurrent scrape, no transparent decompression (the
// load generator asks for gzip itself, as Prometheus does, and checks the
// bytes it gets).
func newLoadClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

// scrapeHeaders are sent on every scrape, as Prometheus sends them.
var scrapeHeaders = map[string]string{
	"Accept":                              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
	"Accept-Encoding":                     "gzip",
	"User-Agent":                          "Prometheus/3.0.0",
	"X-Prometheus-Scrape-Timeout-Seconds": "30",
}

// phase is what one load run measured.
type phase struct {
	scrapes  int
	wire     int64 // body bytes as received, compressed or not
	lat      []time.Duration
	errors   int
	firstErr error
	// reencoded counts bodies of a gzipping target that decoded to the
	// right text but are not the target's gzip bytes: the body was
	// decompressed or recompressed on the way.
	reencoded int
	elapsed   time.Duration
}

func (p *phase) merge(q phase) {
	p.scrapes += q.scrapes
	p.wire += q.wire
	p.lat = append(p.lat, q.lat...)
	p.errors += q.errors
	if p.firstErr == nil {
		p.firstErr = q.firstErr
	}
	p.reencoded += q.reencoded
	p.elapsed += q.elapsed
}

func (p *phase) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.scrapes) / p.elapsed.Seconds()
}

func (p *phase) mbps() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.wire) / (1 << 20) / p.elapsed.Seconds()
}

// percentile returns the q-quantile (0..1) of the latencies, nearest rank.
func percentile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// runLoad scrapes with conc workers for d; worker i scrapes urls[i%len].
// Every worker finishes the scrape it has in flight when d is up, and the
// elapsed time includes that tail, so the rate is never flattered.
func runLoad(ctx context.Context, c *http.Client, urls []string, conc int, d time.Duration, ref *reference) phase {
	start := time.Now()
	deadline := start.Add(d)
	results := make([]phase, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			results[w] = worker(ctx, c, urls[w%len(urls)], deadline, ref)
		})
	}
	wg.Wait()
	var total phase
	for _, r := range results {
		total.merge(r)
	}
	total.elapsed = time.Since(start)
	return total
}

func worker(ctx context.Context, c *http.Client, url string, deadline time.Time, ref *reference) phase {
	var res phase
	var buf, scratch bytes.Buffer
	var zr gzip.Reader
	for ctx.Err() == nil && time.Now().Before(deadline) {
		t0 := time.Now()
		enc, err := scrapeInto(ctx, c, url, &buf)
		lat := time.Since(t0)
		if err == nil {
			var reencoded bool
			reencoded, err = ref.check(enc, buf.Bytes(), &zr, &scratch)
			if reencoded {
				res.reencoded++
			}
		}
		if err != nil {
			res.errors++
			if res.firstErr == nil {
				res.firstErr = fmt.Errorf("%s: %w", url, err)
			}
			continue
		}
		res.scrapes++
		res.wire += int64(buf.Len())
		res.lat = append(res.lat, lat)
	}
	return res
}

// scrapeInto GETs url into buf and returns the Content-Encoding.
func scrapeInto(ctx context.Context, c *http.Client, url string, buf *bytes.Buffer) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	for k, v := range scrapeHeaders {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return "", fmt.Errorf("reading body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d: %.200s", resp.StatusCode, buf.Bytes())
	}
	return resp.Header.Get("Content-Encoding"), nil
}

var errBodyMismatch = errors.New("body differs from the direct scrape")

// check compares a received body with the reference byte for byte, after
// undoing a gzip encoding the reference does not have. reencoded reports a
// correct body that is not in the target's own gzip encoding.
func (r *reference) check(enc string, body []byte, zr *gzip.Reader, scratch *bytes.Buffer) (reencoded bool, err error) {
	switch enc {
	case "":
		if !bytes.Equal(body, r.plain) {
			return false, fmt.Errorf("%w: %d bytes received, %d expected", errBodyMismatch, len(body), len(r.plain))
		}
		return r.gz != nil, nil
	case "gzip":
		if r.gz != nil && bytes.Equal(body, r.gz) {
			return false, nil
		}
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			return false, fmt.Errorf("gzip body: %w", err)
		}
		scratch.Reset()
		if _, err := io.Copy(scratch, zr); err != nil {
			return false, fmt.Errorf("gzip body: %w", err)
		}
		if !bytes.Equal(scratch.Bytes(), r.plain) {
			return false, fmt.Errorf("%w: %d bytes after gunzip, %d expected", errBodyMismatch, scratch.Len(), len(r.plain))
		}
		return r.gz != nil, nil
	default:
		return false, fmt.Errorf("unexpected Content-Encoding %q", enc)
	}
}
