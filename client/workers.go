package client

import (
	"context"
	"sync"
	"time"
)

// workers runs scrapes on goroutines that outlive one scrape. A scrape goes
// deep into net/http and compress/gzip, so a fresh goroutine, which starts
// with a small stack, grows it by copying several times on every scrape
// (about 6 % of the agent's CPU under load in the profiles). A worker keeps
// its grown stack for the next scrape. There is no bound here: the session
// bounds scrapes in flight with MaxInFlightScrapes before it calls run.
type workers struct {
	jobs chan func() // unbuffered: only a worker waiting for work takes a job
	wg   sync.WaitGroup
	idle time.Duration // how long a worker waits for work before it ends
}

func newWorkers(idle time.Duration) *workers {
	return &workers{jobs: make(chan func()), idle: idle}
}

// run hands job to an idle worker, or starts one. Workers end when ctx
// does; wait blocks until they have.
func (w *workers) run(ctx context.Context, job func()) {
	select {
	case w.jobs <- job:
	default:
		w.wg.Go(func() { w.loop(ctx, job) })
	}
}

func (w *workers) loop(ctx context.Context, job func()) {
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		job()
		t.Reset(w.idle)
		select {
		case job = <-w.jobs:
		case <-t.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// wait blocks until every worker has ended. Call it after ctx is done and
// run will not be called again.
func (w *workers) wait() { w.wg.Wait() }
