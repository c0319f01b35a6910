package procs

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestControllerSwitchesWithHysteresis(t *testing.T) {
	t.Parallel()
	c := controller{busy: busy, idle: idle}
	steps := []struct {
		load float64
		want action
	}{
		// Busy at first: stays on the default.
		{1.5, stay}, {0.9, stay},
		// Seven quiet samples are not enough; a load between the
		// thresholds restarts the count.
		{0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay},
		{0.45, stay},
		{0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay}, {0.1, stay},
		{0.3, toOne},
		// On one processor: a load under busy stays there.
		{0.0, stay}, {0.59, stay}, {0.3, stay},
		// At busy it goes back at once.
		{0.6, toDefault},
		{0.0, stay},
	}
	for i, s := range steps {
		if got := c.observe(s.load); got != s.want {
			t.Fatalf("sample %d (load %.2f): action %d, want %d", i, s.load, got, s.want)
		}
	}
}

func TestControllerSamplesARestingProcessLessOften(t *testing.T) {
	t.Parallel()
	c := controller{busy: busy, idle: idle}
	if d := c.next(0); d != interval {
		t.Errorf("on the default, idle: next sample in %s, want %s (the move to one processor must not wait)", d, interval)
	}
	c.one = true
	if d := c.next(0.01); d != restInterval {
		t.Errorf("on one processor, resting: next sample in %s, want %s", d, restInterval)
	}
	if d := c.next(0.1); d != interval {
		t.Errorf("on one processor, some load: next sample in %s, want %s", d, interval)
	}
}

func TestAdaptLeavesAnOperatorsSettingAlone(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Adapt(ctx, func(k string) (string, bool) { return "3", k == "GOMAXPROCS" }, slog.New(slog.DiscardHandler))
	}()
	// With the variable set, Adapt returns at once, though its context
	// lives on; a controller that ran would block until cancel.
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Adapt is still running although GOMAXPROCS is set")
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d after Adapt, was %d", got, before)
	}
}

func TestAdaptFollowsTheLoad(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	if def <= 1 {
		t.Skip("one processor by default: nothing to adapt")
	}
	if _, ok := os.LookupEnv("GOMAXPROCS"); ok {
		t.Skip("GOMAXPROCS is set")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A lower busy threshold than the real one: other test binaries
		// may leave this one well under a core.
		run(ctx, slog.New(slog.DiscardHandler), &controller{busy: 0.25, idle: idle})
	}()
	defer func() {
		cancel()
		<-done
		if got := runtime.GOMAXPROCS(0); got != def {
			t.Errorf("GOMAXPROCS %d after Adapt ended, want the default %d", got, def)
		}
	}()
	// waitFor polls for at most 10 s: the switch comes after 2 s of quiet
	// or within a sample of load.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10 s (GOMAXPROCS %d)", what, runtime.GOMAXPROCS(0))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("move to one processor while idle", func() bool { return runtime.GOMAXPROCS(0) == 1 })

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	waitFor("return to the default under load", func() bool { return runtime.GOMAXPROCS(0) == def })
	close(stop)
	wg.Wait()
}
