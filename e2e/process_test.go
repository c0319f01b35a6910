package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the binaries built for this package run; TestMain creates
// and removes it.
var binDir string

// buildBinaries builds both commands once per package run, and only when a
// test needs them, so that `go test -run InProcess` stays fast. Under -race
// the binaries are built with the race detector too, and a race reported by
// a subprocess fails the test that ran it.
var buildBinaries = sync.OnceValue(func() error {
	args := []string{"build", "-o", binDir + string(filepath.Separator)}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/prometheus-proxy", "./cmd/prometheus-agent")
	cmd := exec.Command("go", args...)
	cmd.Dir = ".." // the module root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
})

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "promproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binary returns the path of a built command, building both on first use.
func binary(t testing.TB, name string) string {
	t.Helper()
	if err := buildBinaries(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

// output is a process's stdout or stderr, safe to read while it is written.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// process is a running binary that the test stops when it ends.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout output
	stderr output
	exited chan struct{}
	err    error // set before exited is closed
	killed bool  // the test killed it on purpose
}

// stopTimeout bounds a graceful stop: the proxy's drain (10 s) plus the
// close of its agent listener (5 s), with a margin.
const stopTimeout = 20 * time.Second

// startProcess runs bin with args. When the test ends the process gets
// SIGTERM and must exit 0 within stopTimeout; otherwise it is killed and the
// test fails. Its stderr is logged when the test has failed.
func startProcess(t testing.TB, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	// The race runtime waits a second before exiting by default; every
	// stop would pay for it.
	p.cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=50")
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if raceEnabled && strings.Contains(p.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", name)
		}
		if t.Failed() {
			t.Logf("%s %s\n--- stdout ---\n%s--- stderr ---\n%s", name, strings.Join(args, " "), p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// stop ends the process with SIGTERM, and SIGKILL if it does not exit in
// time. A process that fails to stop cleanly fails the test.
func (p *process) stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.exited:
		if !p.killed && p.err != nil {
			t.Errorf("%s exited on its own: %v", p.name, p.err)
		}
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("%s: exit after SIGTERM: %v", p.name, p.err)
		}
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("%s did not exit within %v of SIGTERM", p.name, stopTimeout)
	}
}

// kill sends SIGKILL and waits until the process is gone.
func (p *process) kill(t testing.TB) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", p.name)
	}
}

// waitOutput polls the process's stdout for re and returns its submatches.
func (p *process) waitOutput(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	var m []string
	waitFor(t, fmt.Sprintf("%s to print %q", p.name, re), timeout, func() bool {
		if m = re.FindStringSubmatch(p.stdout.String()); m != nil {
			return true
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before printing %q: %v\n%s", p.name, re, p.err, p.stderr.String())
		default:
		}
		return false
	})
	return m
}
