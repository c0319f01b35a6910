package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
)

// promTimeout returns Prometheus' scrape headers with the given scrape
// timeout, with or without gzip.
func promTimeout(d time.Duration, gz bool) map[string]string {
	h := withGzip(promText, gz)
	h["X-Prometheus-Scrape-Timeout-Seconds"] = strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	return h
}

// timed is one scrape's answer and how long it took.
type timed struct {
	reply
	err     error
	elapsed time.Duration
}

func getTimed(c *http.Client, url string, hdr map[string]string) timed {
	start := time.Now()
	r, err := get(c, url, hdr)
	return timed{reply: r, err: err, elapsed: time.Since(start)}
}

// String describes the answer for failure messages.
func (r timed) String() string {
	if r.err != nil {
		return fmt.Sprintf("error after %v: %v", r.elapsed.Round(time.Millisecond), r.err)
	}
	return fmt.Sprintf("%d after %v: %.200q", r.status, r.elapsed.Round(time.Millisecond), r.body)
}

// rawTarget serves each connection with handle, speaking raw TCP so that a
// test can break HTTP in ways net/http would refuse to.
func rawTarget(t testing.TB, handle func(c net.Conn, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					_ = c.Close()
				}()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				handle(c, req)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "http://" + ln.Addr().String()
}

// keepScraping scrapes url every interval until the returned stop is called,
// and reports every answer that is not want.
func keepScraping(t testing.TB, c *http.Client, url string, want []byte, interval time.Duration) (stop func() (ok int, bad []string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var ok int
	var bad []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(interval)
		defer tk.Stop()
		for {
			r := getTimed(c, url, promTimeout(5*time.Second, true))
			switch {
			case r.err != nil || r.status != http.StatusOK || !bytes.Equal(r.body, want):
				bad = append(bad, r.String())
			case r.elapsed > 4*time.Second: // a stall, not just a loaded machine
				bad = append(bad, "slow: "+r.String())
			default:
				ok++
			}
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	return func() (int, []string) {
		cancel()
		<-done
		return ok, bad
	}
}

// procStatus reads a process's resident memory and open file descriptors
// from /proc.
func procStatus(pid int) (rssBytes int64, fds int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rssBytes = kb << 10
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return rssBytes, 0, err
	}
	return rssBytes, len(ents), nil
}

// listenerAddr waits for the proxy to log the address of one of its
// listeners ("admin", "metrics") on stderr.
func listenerAddr(t testing.TB, p *process, name string) string {
	t.Helper()
	re := regexp.MustCompile(`listening .*listener=` + name + ` addr=(\S+)`)
	var m []string
	waitFor(t, p.name+" to log its "+name+" listener", 30*time.Second, func() bool {
		m = re.FindStringSubmatch(p.stderr.String())
		return m != nil
	})
	return m[1]
}

// metricValue returns the value of an unlabelled sample from a text
// exposition at url.
func metricValue(c *http.Client, url, name string) (float64, error) {
	r, err := get(c, url, nil)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no sample %s at %s", name, url)
}

// freePort returns a loopback port that was free a moment ago, for a
// process that must come back on the same port after a restart.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeFile writes a file under the test's temporary directory.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// shortOr returns short under -short and full otherwise.
func shortOr[T any](short, full T) T {
	if testing.Short() {
		return short
	}
	return full
}

// startAgentAt runs an in-process agent against the proxy at agentAddr
// until the test ends.
func startAgentAt(t testing.TB, agentAddr string, paths []client.PathConfig, mutate func(*client.Options)) *client.Agent {
	t.Helper()
	opts := client.DefaultOptions()
	opts.ProxyURLs = []string{agentAddr}
	opts.AgentName = "test-agent"
	opts.Paths = paths
	opts.Logger = testLogger(t)
	if mutate != nil {
		mutate(&opts)
	}
	a, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}
