package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is one of the demo's binaries, running as a subprocess with its
// output in a log file.
type child struct {
	name    string
	logPath string
	exited  chan struct{}
	err     error // set before exited is closed

	mu     sync.Mutex
	stdout strings.Builder
}

// lockedWriter appends to the child's stdout copy.
type lockedWriter struct{ c *child }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.c.mu.Lock()
	defer w.c.mu.Unlock()
	return w.c.stdout.Write(p)
}

// startChild runs bin until ctx ends, then stops it with SIGTERM, and with
// SIGKILL if it is still running 15 s later.
func startChild(ctx context.Context, name, bin, logPath string, args ...string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, logPath: logPath, exited: make(chan struct{})}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	cmd.Stdout = io.MultiWriter(f, lockedWriter{c})
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		_ = f.Close()
		close(c.exited)
	}()
	return c, nil
}

// waitStdout waits until the child prints a line matching re.
func (c *child) waitStdout(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		m := re.FindStringSubmatch(c.stdout.String())
		c.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("%s exited: %v; see %s", c.name, c.err, c.logPath)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s printed nothing matching %q within %v", c.name, re, timeout)
		}
	}
}

// wait blocks until the child has exited.
func (c *child) wait() { <-c.exited }

// dumpLog copies the child's log to w, to explain a failure.
func (c *child) dumpLog(w io.Writer) {
	f, err := os.Open(c.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(w, "--- %s log ---\n", c.name)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fmt.Fprintf(w, "[%s] %s\n", c.name, sc.Text())
	}
}
