package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// sample is one observation of one process.
type sample struct {
	at         time.Duration // since the load started
	heap       uint64        // live heap after a collection
	goroutines int
	rss        int64
	fds        int
}

// watched is a process whose figures must stay flat: the proxy, and each
// agent that is never killed.
type watched struct {
	name    string
	c       *child
	mu      sync.Mutex
	samples []sample
}

var statsClient = &http.Client{Timeout: 10 * time.Second}

// observe samples w once.
func (w *watched) observe(at time.Duration) error {
	resp, err := statsClient.Get("http://" + w.c.ready.Stats + "/stats")
	if err != nil {
		return fmt.Errorf("%s: %w", w.name, err)
	}
	defer resp.Body.Close()
	var st stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("%s: /stats: %w", w.name, err)
	}
	s := sample{at: at, heap: st.HeapAlloc, goroutines: st.Goroutines}
	// Without /proc, RSS and open files stay zero and are not judged.
	s.rss, s.fds, _ = procStatus(w.c.pid())
	w.mu.Lock()
	w.samples = append(w.samples, s)
	w.mu.Unlock()
	return nil
}

// trend compares the start and the end of a run, after the warm-up: the
// median of the first third of the samples against the median of the last
// third. Medians shrug off the moments when a large body happens to be in
// flight during a sample; a leak moves the whole last third.
type trend struct {
	metric     string
	start, end float64
	allowed    float64 // growth tolerated
	judged     bool    // enough samples, and a long enough window
}

func (t trend) grew() bool { return t.judged && t.end-t.start > t.allowed }

// trends judges w's samples taken after warmup. Memory is judged only over
// a window of at least minWindow: over seconds, the heap's sawtooth is
// larger than any leak could be.
func (w *watched) trends(warmup, minWindow time.Duration) []trend {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ss []sample
	for _, s := range w.samples {
		if s.at >= warmup {
			ss = append(ss, s)
		}
	}
	enough := len(ss) >= 6
	long := enough && ss[len(ss)-1].at-ss[0].at >= minWindow
	third := max(len(ss)/3, 1)
	med := func(f func(sample) float64, from, to int) float64 {
		if from >= to {
			return 0
		}
		v := make([]float64, 0, to-from)
		for _, s := range ss[from:to] {
			v = append(v, f(s))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	mk := func(metric string, f func(sample) float64, floor, frac float64, memory bool) trend {
		t := trend{metric: metric, judged: enough && (long || !memory)}
		if len(ss) > 0 {
			t.start, t.end = med(f, 0, third), med(f, len(ss)-third, len(ss))
		}
		t.allowed = max(floor, frac*t.start)
		if t.start == 0 && t.end == 0 {
			t.judged = false // not measured on this system
		}
		return t
	}
	return []trend{
		mk("goroutines", func(s sample) float64 { return float64(s.goroutines) }, 20, 0.2, false),
		mk("fds", func(s sample) float64 { return float64(s.fds) }, 10, 0.2, false),
		mk("heap", func(s sample) float64 { return float64(s.heap) }, 16<<20, 0.5, true),
		mk("rss", func(s sample) float64 { return float64(s.rss) }, 32<<20, 0.5, true),
	}
}
