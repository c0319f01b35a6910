package main

import (
	"bytes"
	"testing"
	"time"
)

// The soak passes only if its checks can fail: these feed them bodies and
// samples that must be caught.

func TestVerifyBody(t *testing.T) {
	t.Parallel()
	good := makeBody("app_p1", 7, 5000)
	corrupt := bytes.Clone(good)
	corrupt[100] ^= 1
	tests := []struct {
		name string
		path string
		body []byte
		ok   bool
	}{
		{name: "intact", path: "app_p1", body: good, ok: true},
		{name: "empty", path: "app_p1", body: nil},
		{name: "truncated", path: "app_p1", body: good[:len(good)/2]},
		{name: "missing its last byte", path: "app_p1", body: good[:len(good)-1]},
		{name: "missing the closing line", path: "app_p1", body: good[:bytes.LastIndex(good, []byte("# soak"))]},
		{name: "corrupted", path: "app_p1", body: corrupt},
		{name: "another path's body", path: "app_p2", body: good},
		{name: "extra bytes", path: "app_p1", body: append(bytes.Clone(good), "x 1\n"...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := verifyBody(tt.path, tt.body); (err == nil) != tt.ok {
				t.Fatalf("verifyBody = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestTrends(t *testing.T) {
	t.Parallel()
	series := func(n int, step time.Duration, heap func(i int) uint64, g func(i int) int) *watched {
		w := &watched{name: "p"}
		for i := range n {
			w.samples = append(w.samples, sample{at: time.Duration(i) * step, heap: heap(i), goroutines: g(i), rss: 50 << 20, fds: 20})
		}
		return w
	}
	flatHeap := func(int) uint64 { return 4 << 20 }
	flatG := func(int) int { return 30 }
	tests := []struct {
		name  string
		w     *watched
		grown []string // metrics that must be judged to grow
	}{
		{name: "flat", w: series(60, 10*time.Second, flatHeap, flatG)},
		{name: "sawtooth", w: series(60, 10*time.Second, func(i int) uint64 { return uint64(2+i%5) << 20 }, flatG)},
		{name: "heap leak", w: series(60, 10*time.Second, func(i int) uint64 { return uint64(4+i/2) << 20 }, flatG), grown: []string{"heap"}},
		{name: "goroutine leak", w: series(60, 10*time.Second, flatHeap, func(i int) int { return 30 + i }), grown: []string{"goroutines"}},
		// Over a few seconds only goroutines and files are judged.
		{name: "short run", w: series(10, time.Second, func(i int) uint64 { return uint64(4+5*i) << 20 }, func(i int) int { return 30 + 10*i }), grown: []string{"goroutines"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, tr := range tt.w.trends(0, time.Minute) {
				if tr.grew() {
					got = append(got, tr.metric)
				}
			}
			if len(got) != len(tt.grown) || (len(got) > 0 && got[0] != tt.grown[0]) {
				t.Fatalf("grew: %v, want %v", got, tt.grown)
			}
		})
	}
}
