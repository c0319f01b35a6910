package procs

import (
	"context"
	"log/slog"
	"runtime"
	"time"
)

const (
	// interval is how often the process's CPU time is sampled: the longest
	// a load that has just risen runs on one processor (restInterval when
	// the process was all but asleep).
	interval = 250 * time.Millisecond
	// busy is the load, in cores, at which a process on one processor gets
	// the runtime's default back; well short of the one core it has,
	// because on a machine whose cores are contended a process on one
	// processor is held under its demand (the kernel shares the cores among
	// threads), so its load understates what it needs.
	busy = 0.6
	// idle is the load under which, held for quietSamples samples in a row
	// (two seconds), the process moves to one processor. The gap to busy
	// keeps a steady load near either from switching back and forth; and
	// the same work costs less CPU on one processor than on several, so a
	// load that moved down does not come back up by moving.
	idle         = 0.3
	quietSamples = 8
	// A process that is all but asleep (under resting cores) on one
	// processor is sampled every restInterval instead: each sample wakes
	// it, which is most of what an idle agent does.
	resting      = 0.05
	restInterval = time.Second
)

// Adapt adjusts GOMAXPROCS until ctx ends, then restores the runtime's
// default. It returns at once, changing nothing, when the GOMAXPROCS
// environment variable is set (the operator's choice stands), when the
// default is a single processor already, or when the system does not
// report the process's CPU time.
func Adapt(ctx context.Context, getenv func(string) (string, bool), log *slog.Logger) {
	if v, ok := getenv("GOMAXPROCS"); ok {
		log.Debug("GOMAXPROCS is set: the number of processors is not adapted to the load", "GOMAXPROCS", v)
		return
	}
	if _, ok := cpuTime(); !ok || runtime.GOMAXPROCS(0) <= 1 {
		return
	}
	run(ctx, log, &controller{busy: busy, idle: idle})
}

func run(ctx context.Context, log *slog.Logger, c *controller) {
	last, _ := cpuTime()
	defer func() {
		if c.one {
			runtime.SetDefaultGOMAXPROCS()
		}
	}()
	t := time.NewTimer(interval)
	defer t.Stop()
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu, _ := cpuTime()
			load := float64(cpu-last) / float64(now.Sub(lastAt))
			last, lastAt = cpu, now
			act := c.observe(load)
			t.Reset(c.next(load))
			switch act {
			case toOne:
				runtime.GOMAXPROCS(1)
				log.Debug("load is low: running on one processor", "load_cores", load)
			case toDefault:
				// The default, not a remembered number: it follows a CPU
				// limit changed while the process ran.
				runtime.SetDefaultGOMAXPROCS()
				log.Debug("load is rising: running on every processor", "load_cores", load, "GOMAXPROCS", runtime.GOMAXPROCS(0))
			}
		}
	}
}

type action int

const (
	stay action = iota
	toOne
	toDefault
)

// controller decides from one load sample at a time; it starts on the
// default, so that startup work (handshakes, a fleet registering) has every
// processor.
type controller struct {
	busy, idle float64 // thresholds, in cores
	one        bool
	quiet      int
}

// next is the time to the following sample.
func (c *controller) next(load float64) time.Duration {
	if c.one && load < resting {
		return restInterval
	}
	return interval
}

func (c *controller) observe(load float64) action {
	if c.one {
		if load >= c.busy {
			c.one, c.quiet = false, 0
			return toDefault
		}
		return stay
	}
	if load > c.idle {
		c.quiet = 0
		return stay
	}
	if c.quiet++; c.quiet < quietSamples {
		return stay
	}
	c.one, c.quiet = true, 0
	return toOne
}
