package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// exposition returns Prometheus text exposition of about size bytes, the
// same bytes for the same size on every call: families of counters, gauges
// and histograms, a HELP and TYPE line every ~50 samples, several labels
// per sample and float values in the forms client_golang writes.
func exposition(size int) []byte {
	rng := rand.New(rand.NewPCG(uint64(size), 0x5eed))
	var b bytes.Buffer
	b.Grow(size + 4096)
	handlers := []string{"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/federate", "/metrics", "/-/healthy", "/api/v1/write"}
	methods := []string{"GET", "POST"}
	codes := []string{"200", "204", "400", "404", "500", "503"}
	buckets := []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}
	for fam := 0; b.Len() < size; fam++ {
		name := fmt.Sprintf("app_subsystem%d_requests_%d", fam%17, fam)
		switch fam % 3 {
		case 0: // counter: 48 samples
			fmt.Fprintf(&b, "# HELP %s_total Total number of requests handled, partitioned by handler, method and code.\n# TYPE %s_total counter\n", name, name)
			for i := range 48 {
				fmt.Fprintf(&b, "%s_total{handler=%q,method=%q,code=%q,instance=\"10.0.%d.%d:9100\"} %s\n",
					name, handlers[i%len(handlers)], methods[i%len(methods)], codes[i%len(codes)], fam%256, i,
					strconv.FormatFloat(float64(rng.IntN(1e9)), 'g', -1, 64))
			}
		case 1: // gauge: 50 samples with fractional values
			fmt.Fprintf(&b, "# HELP %s_in_flight Current number of requests being served.\n# TYPE %s_in_flight gauge\n", name, name)
			for i := range 50 {
				fmt.Fprintf(&b, "%s_in_flight{handler=%q,shard=\"%d\",zone=\"eu-west-%d\"} %s\n",
					name, handlers[i%len(handlers)], i, i%3+1, strconv.FormatFloat(rng.Float64()*1000, 'g', -1, 64))
			}
		default: // histogram: 4 series of 12 buckets plus _sum and _count
			fmt.Fprintf(&b, "# HELP %s_duration_seconds Request latency in seconds.\n# TYPE %s_duration_seconds histogram\n", name, name)
			for s := range 4 {
				h := handlers[(fam+s)%len(handlers)]
				var cum uint64
				for _, le := range buckets {
					cum += uint64(rng.IntN(5000))
					fmt.Fprintf(&b, "%s_duration_seconds_bucket{handler=%q,le=%q} %d\n", name, h, le, cum)
				}
				fmt.Fprintf(&b, "%s_duration_seconds_sum{handler=%q} %s\n", name, h, strconv.FormatFloat(rng.Float64()*float64(cum), 'g', -1, 64))
				fmt.Fprintf(&b, "%s_duration_seconds_count{handler=%q} %d\n", name, h, cum)
			}
		}
	}
	return b.Bytes()
}

// gzipBytes compresses b at the default level, as promhttp does.
func gzipBytes(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

// sizeLabel names a body size the way the table does.
func sizeLabel(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + " MB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + " KB"
	default:
		return strconv.Itoa(n) + " B"
	}
}
