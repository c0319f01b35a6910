package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// scrapeScenario is one direct-versus-proxied comparison.
type scrapeScenario struct {
	name string
	size string // key of bodySizes
	conc int
}

var scrapeScenarios = []scrapeScenario{
	{"10k-c1", "10k", 1},
	{"10k-c8", "10k", 8},
	{"10k-c64", "10k", 64},
	{"1m-c8", "1m", 8},
	{"20m-c8", "20m", 8},
}

// row is one line of the result table.
type row struct {
	scenario string
	target   string
	direct   phase
	proxied  phase
	// cpuProxy and cpuAgent are CPU time over the proxied phases.
	cpuProxy, cpuAgent time.Duration
	peakProxy          int64
	peakAgent          int64
	// others is the CPU, in cores, that processes outside the bench used
	// while the scenario was measured: the noise on a shared machine.
	others float64
	goal   string
	// result holds the figures of rows that are not scrape comparisons.
	result  string
	verdict string
	err     error
	// checked counts the bodies compared byte for byte, warm-up included.
	checked int
}

func (b *bench) runAll(ctx context.Context) ([]row, error) {
	var rows []row
	var errs []error
	add := func(r row) {
		rows = append(rows, r)
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", r.scenario, r.target, r.err))
		}
	}
	for _, sc := range scrapeScenarios {
		if !b.o.scenarios[sc.name] {
			continue
		}
		for _, enc := range b.o.encodings {
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
			b.logf("scenario %s, %s target", sc.name, enc)
			add(b.runScrape(ctx, sc, enc))
		}
	}
	if b.o.scenarios["agent-idle"] && ctx.Err() == nil {
		b.logf("scenario agent-idle")
		add(b.runIdleAgent(ctx))
	}
	if (b.o.scenarios["fleet-idle"] || b.o.scenarios["fleet-reconnect"]) && ctx.Err() == nil {
		for _, r := range b.runFleet(ctx) {
			add(r)
		}
	}
	return rows, errors.Join(errs...)
}

// usage samples the CPU time of the bench's own processes and of the
// whole machine, to tell how much of the machine others used meanwhile.
type usage struct {
	at     time.Time
	busy   time.Duration
	ours   time.Duration
	byProc map[int]time.Duration
}

func (b *bench) sampleUsage(pids ...int) usage {
	u := usage{at: time.Now(), byProc: map[int]time.Duration{}}
	u.busy, _, _ = machineCPU()
	for _, pid := range append([]int{os.Getpid(), b.target.pid()}, pids...) {
		t, _ := cpuTime(pid)
		u.byProc[pid] = t
		u.ours += t
	}
	return u
}

// othersSince returns the cores used by processes outside the bench.
func (u usage) othersSince(prev usage) float64 {
	wall := u.at.Sub(prev.at)
	if wall <= 0 {
		return 0
	}
	return max(0, float64((u.busy-prev.busy)-(u.ours-prev.ours))/float64(wall))
}

// rssSampler polls VmRSS, a fallback for kernels that cannot reset VmHWM.
type rssSampler struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	peaks []int64
}

func sampleRSS(pids ...int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), peaks: make([]int64, len(pids))}
	s.wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			for i, pid := range pids {
				if m, err := readMemory(pid); err == nil {
					s.peaks[i] = max(s.peaks[i], m.rss)
				}
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	})
	return s
}

func (s *rssSampler) finish() []int64 {
	close(s.stop)
	s.wg.Wait()
	return s.peaks
}

// peakRSS is the larger of the kernel's peak since it was reset and the
// sampled peak.
func peakRSS(pid int, sampled int64, reset bool) int64 {
	m, err := readMemory(pid)
	if err != nil || !reset {
		return sampled
	}
	return max(m.peak, sampled)
}

// runScrape compares direct and proxied scrapes of one body at one
// concurrency. Each worker scrapes its own path of the agent, as Prometheus
// scrapes many targets through one agent. Rounds alternate the order of the
// direct and proxied phases, so that a drift in the machine's load biases
// neither.
func (b *bench) runScrape(ctx context.Context, sc scrapeScenario, enc string) row {
	r := row{scenario: sc.name, target: enc}
	ref := b.refs[sc.size+"/"+enc]
	targetURL := b.targetBase + "/" + sc.size + "/" + enc
	paths := map[string]string{}
	var proxied []string
	p, err := b.startPair(ctx, func() map[string]string {
		for i := range sc.conc {
			paths[fmt.Sprintf("%s_%s_%d", strings.ReplaceAll(sc.name, "-", "_"), enc, i)] = targetURL
		}
		return paths
	}())
	if err != nil {
		r.err = err
		return r
	}
	defer p.stop()
	for path := range paths {
		proxied = append(proxied, p.scrapeBase+"/"+path)
	}
	direct := []string{targetURL}

	warm := runLoad(ctx, b.client, proxied, sc.conc, b.o.warmup, ref)
	warm.merge(runLoad(ctx, b.client, direct, sc.conc, b.o.warmup, ref))
	r.checked = warm.scrapes
	if warm.errors > 0 {
		r.err = fmt.Errorf("%d failed scrapes during warm-up, first: %w", warm.errors, warm.firstErr)
		return r
	}

	pp, ap := p.proxy.pid(), p.agent.pid()
	reset := resetPeak(pp) == nil && resetPeak(ap) == nil
	sampler := sampleRSS(pp, ap)
	u0 := b.sampleUsage(pp, ap)
	for round := range b.o.rounds {
		order := []bool{false, true}
		if round%2 == 1 {
			order = []bool{true, false}
		}
		for _, viaProxy := range order {
			if !viaProxy {
				r.direct.merge(runLoad(ctx, b.client, direct, sc.conc, b.o.phase, ref))
				continue
			}
			c0 := b.sampleUsage(pp, ap)
			var prof sync.WaitGroup
			if b.o.profile != "" && round == 0 {
				prof.Go(func() {
					secs := max(1, int(b.o.phase.Seconds()))
					name := fmt.Sprintf("%s-%s-proxy-cpu.pprof", sc.name, enc)
					if err := b.saveProfile(ctx, p, fmt.Sprintf("profile?seconds=%d", secs), name); err != nil {
						b.logf("%v", err)
					}
				})
			}
			r.proxied.merge(runLoad(ctx, b.client, proxied, sc.conc, b.o.phase, ref))
			c1 := b.sampleUsage(pp, ap)
			r.cpuProxy += c1.byProc[pp] - c0.byProc[pp]
			r.cpuAgent += c1.byProc[ap] - c0.byProc[ap]
			prof.Wait()
		}
	}
	u1 := b.sampleUsage(pp, ap)
	r.others = u1.othersSince(u0)
	peaks := sampler.finish()
	r.peakProxy, r.peakAgent = peakRSS(pp, peaks[0], reset), peakRSS(ap, peaks[1], reset)
	if b.o.profile != "" {
		if err := b.saveProfile(ctx, p, "allocs", fmt.Sprintf("%s-%s-proxy-allocs.pprof", sc.name, enc)); err != nil {
			b.logf("%v", err)
		}
	}
	r.checked += r.direct.scrapes + r.proxied.scrapes
	for _, ph := range []*phase{&r.direct, &r.proxied} {
		if ph.errors > 0 && r.err == nil {
			r.err = fmt.Errorf("%d failed scrapes, first: %w", ph.errors, ph.firstErr)
		}
	}
	if err := errors.Join(p.proxy.exited(), p.agent.exited()); err != nil && r.err == nil {
		r.err = err
	}
	r.judge(sc)
	return r
}

// cpuPerScrape is the proxy's and the agent's CPU per proxied scrape.
func (r *row) cpuPerScrape() (proxy, agent time.Duration) {
	if r.proxied.scrapes == 0 {
		return 0, 0
	}
	n := time.Duration(r.proxied.scrapes)
	return r.cpuProxy / n, r.cpuAgent / n
}

func (r *row) ratio() float64 {
	if r.direct.rate() == 0 {
		return 0
	}
	return r.proxied.rate() / r.direct.rate()
}

// judge compares the row with the goal of its scenario. The verdict is a
// report, never an assertion: the figures decide.
func (r *row) judge(sc scrapeScenario) {
	var missed []string
	cp, ca := r.cpuPerScrape()
	switch sc.name {
	case "10k-c1":
		r.goal = "added p50 ≤ 0.3 ms, p99 ≤ 1 ms"
		if d := percentile(r.proxied.lat, 0.5) - percentile(r.direct.lat, 0.5); d > 300*time.Microsecond {
			missed = append(missed, "p50 +"+fmtDur(d))
		}
		if d := percentile(r.proxied.lat, 0.99) - percentile(r.direct.lat, 0.99); d > time.Millisecond {
			missed = append(missed, "p99 +"+fmtDur(d))
		}
	case "10k-c8", "10k-c64":
		r.goal = "≥ 0.4× direct, ≤ 60 µs CPU/scrape"
		if x := r.ratio(); x < 0.4 {
			missed = append(missed, fmt.Sprintf("%.2f×", x))
		}
		if cp+ca > 60*time.Microsecond {
			missed = append(missed, fmtDur(cp+ca)+"/scrape")
		}
	case "1m-c8":
		r.goal = "≥ 0.4× direct, no recompression"
		if x := r.ratio(); x < 0.4 {
			missed = append(missed, fmt.Sprintf("%.2f×", x))
		}
	case "20m-c8":
		r.goal = "byte-exact, RSS ≤ 64 MiB each"
		if r.peakProxy > 64<<20 {
			missed = append(missed, "proxy "+fmtMiB(r.peakProxy))
		}
		if r.peakAgent > 64<<20 {
			missed = append(missed, "agent "+fmtMiB(r.peakAgent))
		}
	}
	if r.proxied.reencoded > 0 {
		missed = append(missed, fmt.Sprintf("%d bodies re-encoded", r.proxied.reencoded))
	}
	r.verdict = verdict(r.err, missed)
}

func verdict(err error, missed []string) string {
	switch {
	case err != nil:
		return "FAILED"
	case len(missed) > 0:
		return "missed: " + strings.Join(missed, ", ")
	default:
		return "met"
	}
}

// runIdleAgent measures one agent binary at rest, registered with one path
// and having served one scrape.
func (b *bench) runIdleAgent(ctx context.Context) row {
	r := row{scenario: "agent-idle", target: "gzip", goal: "agent RSS ≤ 15 MiB"}
	p, err := b.startPair(ctx, map[string]string{"idle": b.targetBase + "/10k/gzip"})
	if err != nil {
		r.err = err
		return r
	}
	defer p.stop()
	r.proxied = runLoad(ctx, b.client, []string{p.scrapeBase + "/idle"}, 1, 100*time.Millisecond, b.refs["10k/gzip"])
	r.checked = r.proxied.scrapes
	u0 := b.sampleUsage(p.proxy.pid(), p.agent.pid())
	select {
	case <-ctx.Done():
	case <-time.After(b.o.idleFor):
	}
	u1 := b.sampleUsage(p.proxy.pid(), p.agent.pid())
	r.others = u1.othersSince(u0)
	am, err1 := readMemory(p.agent.pid())
	pm, err2 := readMemory(p.proxy.pid())
	if err := errors.Join(err1, err2); err != nil {
		r.err = err
		return r
	}
	r.peakProxy, r.peakAgent = pm.rss, am.rss
	wall := u1.at.Sub(u0.at).Seconds()
	r.result = fmt.Sprintf("after %s at rest: agent RSS %s (%s anonymous: heap and stacks; the rest are pages of the executable), CPU %.2f %% of a core; proxy RSS %s (%s anonymous)",
		b.o.idleFor, fmtMiB(am.rss), fmtMiB(am.anon), 100*(u1.byProc[p.agent.pid()]-u0.byProc[p.agent.pid()]).Seconds()/wall, fmtMiB(pm.rss), fmtMiB(pm.anon))
	var missed []string
	if am.rss > 15<<20 {
		missed = append(missed, "agent "+fmtMiB(am.rss))
	}
	if r.proxied.errors > 0 {
		r.err = r.proxied.firstErr
	}
	r.verdict = verdict(r.err, missed)
	return r
}
