package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// printReport writes the machine, the command and the table, in Markdown
// so that it can go into docs/BENCHMARKS.md as it is.
func (b *bench) printReport(w io.Writer, rows []row) {
	fmt.Fprintf(w, "\n%s, %d cores (%s), %s, Linux %s; load average %s at start, %s at end\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), cpuModel(), runtime.Version(), kernel(), b.loadStart, loadAvg())
	fmt.Fprintf(w, "command: go run ./bench %s\n\n", strings.Join(b.o.args, " "))
	fmt.Fprintln(w, "| scenario | target | scrapes/s direct → proxied | ratio | MB/s proxied | p50 direct → proxied | p99 direct → proxied | CPU/scrape proxy + agent | peak RSS proxy / agent | others' load | goal | verdict |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	var notes []string
	for _, r := range rows {
		load := fmt.Sprintf("%.2f cores", r.others)
		if r.result != "" || r.proxied.scrapes == 0 {
			rss := "—"
			switch {
			case r.peakProxy > 0 && r.peakAgent > 0:
				rss = fmtMiB(r.peakProxy) + " / " + fmtMiB(r.peakAgent)
			case r.peakProxy > 0:
				rss = fmtMiB(r.peakProxy) + " / —"
			}
			fmt.Fprintf(w, "| %s | %s | — | — | — | — | — | — | %s | %s | %s | %s |\n", r.scenario, r.target, rss, load, r.goal, r.verdict)
			if r.result != "" {
				notes = append(notes, fmt.Sprintf("- **%s**: %s", r.scenario, r.result))
			}
		} else {
			cp, ca := r.cpuPerScrape()
			p50d, p50p := percentile(r.direct.lat, 0.5), percentile(r.proxied.lat, 0.5)
			p99d, p99p := percentile(r.direct.lat, 0.99), percentile(r.proxied.lat, 0.99)
			fmt.Fprintf(w, "| %s | %s | %.0f → %.0f | %.2f× | %.1f | %s → %s (+%s) | %s → %s (+%s) | %s + %s | %s / %s | %s | %s | %s |\n",
				r.scenario, r.target, r.direct.rate(), r.proxied.rate(), r.ratio(), r.proxied.mbps(),
				fmtDur(p50d), fmtDur(p50p), fmtDur(p50p-p50d), fmtDur(p99d), fmtDur(p99p), fmtDur(p99p-p99d),
				fmtDur(cp), fmtDur(ca), fmtMiB(r.peakProxy), fmtMiB(r.peakAgent), load, r.goal, r.verdict)
		}
		if r.err != nil {
			notes = append(notes, fmt.Sprintf("- **%s %s** failed: %v", r.scenario, r.target, r.err))
		}
	}
	checked := 0
	for _, r := range rows {
		checked += r.checked
	}
	fmt.Fprintf(w, "\n%d scraped bodies checked byte for byte against the direct scrape (the fleet's against what each agent serves).\n", checked)
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func fmtDur(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%s%d µs", neg, d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%s%.2f ms", neg, float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%s%.2f s", neg, d.Seconds())
	}
}

func fmtMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
func fmtKiB(n int64) string { return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10)) }
