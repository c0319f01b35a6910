// Package testlog routes the logs of code under test to testing.T, so
// they show only for failing tests, and catches log lines written after a
// test ended: those come from a goroutine that outlived the Run, Close or
// Shutdown that should have waited for it.
package testlog

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// Logger returns a debug-level text logger writing to t.Log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer writes each write as one t.Log line until the test's cleanups have
// run. A later line goes to stderr, marked, because t.Log would panic then.
func Writer(t testing.TB) io.Writer {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		fmt.Fprintf(os.Stderr, "LATE LOG LINE after %s ended: %s\n", w.t.Name(), line)
		return len(p), nil
	}
	w.t.Log(line)
	return len(p), nil
}

// Recorder keeps everything written to it, for assertions on what was
// logged, and forwards it to Writer(t).
type Recorder struct {
	w  io.Writer
	mu sync.Mutex
	b  strings.Builder
}

// NewRecorder returns a Recorder forwarding to t's log.
func NewRecorder(t testing.TB) *Recorder { return &Recorder{w: Writer(t)} }

// Write records p and forwards it.
func (r *Recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.b.Write(p)
	r.mu.Unlock()
	return r.w.Write(p)
}

// String returns everything written so far.
func (r *Recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.b.String()
}

// Logger returns a debug-level text logger writing to r.
func (r *Recorder) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(r, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
