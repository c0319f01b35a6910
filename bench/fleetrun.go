package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// runFleet measures one proxy process holding a fleet of agents at rest,
// then the same fleet reconnecting all at once.
func (b *bench) runFleet(ctx context.Context) []row {
	n := b.o.agents
	idle := row{scenario: "fleet-idle", target: "—", goal: "proxy RSS ≤ 1 GiB (≤ 100 KiB/agent), CPU ≤ 5 % of a core"}
	storm := row{scenario: "fleet-reconnect", target: "—", goal: "all back ≤ 60 s; scrapes of agents back keep working"}
	fail := func(err error) []row {
		idle.err, storm.err = err, err
		idle.verdict, storm.verdict = "FAILED", "FAILED"
		var rows []row
		if b.o.scenarios["fleet-idle"] {
			rows = append(rows, idle)
		}
		if b.o.scenarios["fleet-reconnect"] {
			rows = append(rows, storm)
		}
		return rows
	}
	if err := raiseFileLimit(n + 1024); err != nil {
		return fail(err)
	}
	p, err := b.startProxy()
	if err != nil {
		return fail(err)
	}
	defer p.stop()
	if err := waitListening(ctx, p.agentAddr, p.proxy); err != nil {
		return fail(err)
	}
	pp := p.proxy.pid()
	empty, err := readMemory(pp)
	if err != nil {
		return fail(err)
	}

	b.logf("fleet: starting %d agents", n)
	f := newFleet(p.agentAddr, n)
	fctx, fcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		fcancel()
		wg.Wait()
	}()
	coldStart := time.Now()
	go f.start(fctx, &wg, 256)
	if _, err := f.waitRegistered(ctx, int64(n), 3*time.Minute); err != nil {
		return fail(fmt.Errorf("cold start: %w", err))
	}
	cold := time.Since(coldStart)
	b.logf("fleet: %d agents registered in %s", n, cold.Round(time.Millisecond))
	anyAgent := func() *simAgent { return f.agents[rand.IntN(len(f.agents))] }
	ok, bad, err, _ := b.scrapeFleet(ctx, p, anyAgent, 8, 500, 0)
	if bad > 0 {
		return fail(fmt.Errorf("%d of %d scrapes of the fleet failed, first: %w", bad, ok+bad, err))
	}
	idle.checked = ok

	if b.o.scenarios["fleet-idle"] {
		b.logf("fleet: measuring at rest for %s", b.o.idleFor)
		sleepCtx(ctx, 5*time.Second) // let the scrapes above and the GC settle, and the proxy move to one processor (after 2 s of quiet)
		u0 := b.sampleUsage(pp)
		var prof sync.WaitGroup
		if b.o.profile != "" {
			prof.Go(func() {
				q := fmt.Sprintf("profile?seconds=%d", max(1, int(b.o.idleFor.Seconds())-1))
				if err := b.saveProfile(ctx, p, q, "fleet-idle-proxy-cpu.pprof"); err != nil {
					b.logf("%v", err)
				}
			})
		}
		sleepCtx(ctx, b.o.idleFor)
		u1 := b.sampleUsage(pp)
		prof.Wait()
		if b.o.profile != "" {
			if err := b.saveProfile(ctx, p, "heap", "fleet-idle-proxy-heap.pprof"); err != nil {
				b.logf("%v", err)
			}
		}
		idle.others = u1.othersSince(u0)
		m, err := readMemory(pp)
		if err != nil {
			return fail(err)
		}
		idle.peakProxy = m.rss
		cpu := 100 * (u1.byProc[pp] - u0.byProc[pp]).Seconds() / u1.at.Sub(u0.at).Seconds()
		perAgent := (m.rss - empty.rss) / int64(n)
		idle.result = fmt.Sprintf("%d agents: proxy RSS %s (%s per agent over the empty proxy's %s), CPU %.1f %% of a core; cold start of all %d took %s",
			n, fmtMiB(m.rss), fmtKiB(perAgent), fmtMiB(empty.rss), cpu, n, cold.Round(100*time.Millisecond))
		var missed []string
		if m.rss > 1<<30 || perAgent > 100<<10 {
			missed = append(missed, "RSS "+fmtMiB(m.rss))
		}
		if cpu > 5 {
			missed = append(missed, fmt.Sprintf("CPU %.1f %%", cpu))
		}
		idle.verdict = verdict(nil, missed)
	}
	var rows []row
	if b.o.scenarios["fleet-idle"] {
		rows = append(rows, idle)
	}
	if !b.o.scenarios["fleet-reconnect"] {
		return rows
	}

	b.logf("fleet: dropping all %d connections at once", n)
	reset := resetPeak(pp) == nil
	sampler := sampleRSS(pp)
	u0 := b.sampleUsage(pp)
	sctx, scancel := context.WithCancel(ctx)
	type outcome struct {
		ok, bad int
		first   error
		lat     []time.Duration
	}
	scraped := make(chan outcome, 1)
	f.dropAll()
	go func() {
		// Prometheus scraping every agent every 15 s, spread over 8
		// connections; only agents already back are scraped.
		pace := time.Duration(float64(8*15*time.Second) / float64(n))
		var o outcome
		o.ok, o.bad, o.first, o.lat = b.scrapeFleet(sctx, p, f.pickBack, 8, math.MaxInt32, pace)
		scraped <- o
	}()
	back, err := f.waitRegistered(ctx, int64(n), 2*time.Minute)
	scancel()
	sc := <-scraped
	u1 := b.sampleUsage(pp)
	storm.others = u1.othersSince(u0)
	storm.peakProxy = peakRSS(pp, sampler.finish()[0], reset)
	storm.checked = sc.ok
	cpu := 100 * (u1.byProc[pp] - u0.byProc[pp]).Seconds() / u1.at.Sub(u0.at).Seconds()
	if err != nil {
		storm.err = err
	}
	storm.result = fmt.Sprintf("%d agents back in %s (their backoff alone spreads reconnects over 0.25-0.5 s); scrapes of agents already back meanwhile: %d ok (p50 %s, max %s), %d failed; proxy peak RSS %s, CPU %.0f %% of a core",
		f.registered.Load(), back.Round(10*time.Millisecond), sc.ok, fmtDur(percentile(sc.lat, 0.5)), fmtDur(percentile(sc.lat, 1)), sc.bad, fmtMiB(storm.peakProxy), cpu)
	var missed []string
	if back > time.Minute {
		missed = append(missed, "took "+back.Round(time.Second).String())
	}
	if sc.bad > 0 {
		missed = append(missed, fmt.Sprintf("%d scrapes failed (first: %v)", sc.bad, sc.first))
	}
	if sc.ok == 0 {
		missed = append(missed, "no scrape of an agent that was back")
	}
	storm.verdict = verdict(storm.err, missed)
	return append(rows, storm)
}

// scrapeFleet scrapes count agents picked by pick through the proxy with
// conc workers, pausing every worker for pace between scrapes, and checks
// each body against the one the agent serves.
func (b *bench) scrapeFleet(ctx context.Context, p *pair, pick func() *simAgent, conc, count int, pace time.Duration) (ok, bad int, first error, lat []time.Duration) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	per := max(1, count/conc)
	for range conc {
		wg.Go(func() {
			var buf bytes.Buffer
			for range per {
				if ctx.Err() != nil {
					return
				}
				a := pick()
				if a == nil {
					sleepCtx(ctx, 5*time.Millisecond)
					continue
				}
				t0 := time.Now()
				_, err := scrapeInto(ctx, b.client, p.scrapeBase+"/"+a.path, &buf)
				d := time.Since(t0)
				if err == nil && !bytes.Equal(buf.Bytes(), a.body) {
					err = errBodyMismatch
				}
				mu.Lock()
				switch {
				case err == nil:
					ok++
					lat = append(lat, d)
				case ctx.Err() == nil:
					bad++
					if first == nil {
						first = fmt.Errorf("%s: %w", a.path, err)
					}
				}
				mu.Unlock()
				sleepCtx(ctx, pace)
			}
		})
	}
	wg.Wait()
	return ok, bad, first, lat
}

// waitListening waits until addr accepts TCP connections.
func waitListening(ctx context.Context, addr string, p *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := p.exited(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening within 30s: %w", addr, err)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
