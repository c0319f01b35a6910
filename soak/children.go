package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is one process of the soak: the proxy or an agent.
type child struct {
	name  string
	cmd   *exec.Cmd
	ready ready
	done  chan struct{}
	err   error // set before done is closed

	mu     sync.Mutex
	killed bool // ended on purpose with SIGKILL

	stderr lockedBuffer
}

// lockedBuffer keeps the end of a child's stderr for the report.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		keep := b.buf.Bytes()[b.buf.Len()-32<<10:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), keep...))
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startChild runs this binary again in role, and waits for its ready line.
func startChild(name, role string, args roleArgs) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, done: make(chan struct{})}
	c.cmd = exec.Command(exe)
	c.cmd.Env = append(os.Environ(), roleEnv+"="+role, roleArgsEnv+"="+string(raw), "GORACE=atexit_sleep_ms=0")
	c.cmd.Stderr = &c.stderr
	c.cmd.SysProcAttr = childAttr()
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	lines := make(chan []byte, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
		close(lines)
		for sc.Scan() { // drain, so the child never blocks on stdout
		}
	}()
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			<-c.done
			return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, c.err, c.stderr.String())
		}
		if err := json.Unmarshal(line, &c.ready); err != nil {
			c.kill()
			return nil, fmt.Errorf("%s: ready line %q: %w", name, line, err)
		}
	case <-time.After(60 * time.Second):
		c.kill()
		return nil, fmt.Errorf("%s not ready within 60s\n%s", name, c.stderr.String())
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL and waits for it.
func (c *child) kill() {
	c.mu.Lock()
	c.killed = true
	c.mu.Unlock()
	_ = c.cmd.Process.Kill()
	<-c.done
}

// stop ends the process with SIGTERM, and SIGKILL after timeout. It returns
// an error if the process did not exit cleanly in time.
func (c *child) stop(timeout time.Duration) error {
	if c.exited() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.killed {
			return nil
		}
		return c.err
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		if c.err != nil {
			return fmt.Errorf("%s: exit after SIGTERM: %w", c.name, c.err)
		}
		return nil
	case <-time.After(timeout):
		c.kill()
		return errors.New(c.name + " did not exit within " + timeout.String() + " of SIGTERM")
	}
}
