package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// report is the outcome of a soak run.
type report struct {
	cfg        config
	elapsed    time.Duration
	load       *loadStats
	kills      map[string]int // by signal
	recoveries []time.Duration
	watched    []*watched
	problems   []string
}

func (r *report) fail(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *report) passed() bool     { return len(r.problems) == 0 }
func (r *report) failures() string { return strings.Join(r.problems, "; ") }

// judge turns the figures into verdicts.
func (r *report) judge() {
	if n := r.load.wrongBodies(); n > 0 {
		r.fail("%d wrong bodies reached the client: %q", n, r.load.wrong)
	}
	st := r.load.classes["stable"]
	if bad := st.total - st.ok; bad > 0 {
		r.fail("%d of %d scrapes of paths whose agents were never killed failed: %v", bad, st.total, st.byKind)
	}
	if st.total == 0 || r.load.classes["churn"].total == 0 {
		r.fail("no load: %d stable and %d churn scrapes", st.total, r.load.classes["churn"].total)
	}
	for _, w := range r.watched {
		for _, t := range w.trends(r.cfg.warmup, r.cfg.minTrendWindow) {
			if t.grew() {
				r.fail("%s %s grew from %s to %s (allowed %s)", w.name, t.metric, fmtFig(t.metric, t.start), fmtFig(t.metric, t.end), fmtFig(t.metric, t.allowed))
			}
		}
	}
}

func fmtFig(metric string, v float64) string {
	if metric == "heap" || metric == "rss" {
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%.0f", v)
}

// write prints the report as Markdown, ready for docs/RELIABILITY.md.
func (r *report) write(w io.Writer) {
	c := r.cfg
	fmt.Fprintf(w, "## Soak run\n\n")
	fmt.Fprintf(w, "- duration %v (warm-up %v); %d agents never killed + %d killed in turn, %d paths each; target %.0f scrapes/s over %d workers\n",
		r.elapsed.Round(time.Second), c.warmup, c.stableAgents, c.churnAgents, c.pathsPerAgent, c.rate, c.workers)
	fmt.Fprintf(w, "- body sizes %v bytes, every third path gzipped by its target; half the scrapes accept gzip\n", c.sizes())
	var kills []string
	for sig, n := range r.kills {
		kills = append(kills, fmt.Sprintf("%d × %s", n, sig))
	}
	slices.Sort(kills)
	fmt.Fprintf(w, "- agent restarts every %v, %v down: %s\n", c.killEvery, c.down, strings.Join(kills, ", "))
	if len(r.recoveries) > 0 {
		rs := slices.Clone(r.recoveries)
		slices.Sort(rs)
		fmt.Fprintf(w, "- recovery after restart (process start to a good scrape): min %v, median %v, max %v over %d restarts\n",
			rs[0].Round(time.Millisecond), rs[len(rs)/2].Round(time.Millisecond), rs[len(rs)-1].Round(time.Millisecond), len(rs))
	}
	fmt.Fprintf(w, "- load generator fell behind %d times\n\n", r.load.behind.Load())

	fmt.Fprintf(w, "| paths | scrapes | good | wrong bodies | failures by kind | slowest |\n|---|---:|---:|---:|---|---:|\n")
	r.load.mu.Lock()
	for _, class := range []string{"stable", "churn"} {
		t := r.load.classes[class]
		var kinds []string
		for _, k := range t.kinds() {
			if k != "wrong_body" {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, t.byKind[k]))
			}
		}
		if len(kinds) == 0 {
			kinds = []string{"none"}
		}
		label := map[string]string{"stable": "agents never killed", "churn": "agents killed in turn"}[class]
		fmt.Fprintf(w, "| %s | %d | %d | %d | %s | %v |\n", label, t.total, t.ok, t.byKind["wrong_body"], strings.Join(kinds, ", "), t.slowest.Round(time.Millisecond))
	}
	r.load.mu.Unlock()

	fmt.Fprintf(w, "\n| process | live heap after GC | goroutines | RSS | open files |\n|---|---|---|---|---|\n")
	for _, wt := range r.watched {
		ts := wt.trends(c.warmup, c.minTrendWindow)
		cell := func(t trend) string {
			s := fmtFig(t.metric, t.start) + " → " + fmtFig(t.metric, t.end)
			switch {
			case t.grew():
				s += " **grew**"
			case !t.judged:
				s += " (not judged)"
			}
			return s
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", wt.name, cell(ts[2]), cell(ts[0]), cell(ts[3]), cell(ts[1]))
	}
	fmt.Fprintf(w, "\nFigures are medians of the first and last third of the samples taken every %v after the warm-up.\n\n", c.sampleEvery)
	if r.passed() {
		fmt.Fprintf(w, "Result: **pass**\n")
	} else {
		fmt.Fprintf(w, "Result: **FAIL**\n\n")
		for _, p := range r.problems {
			fmt.Fprintf(w, "- %s\n", p)
		}
	}
}
