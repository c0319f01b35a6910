package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/promproxy/promproxy/client"
)

// config is the soak's command line.
type config struct {
	duration       time.Duration
	stableAgents   int
	churnAgents    int
	pathsPerAgent  int
	rate           float64
	workers        int
	killEvery      time.Duration
	down           time.Duration
	sampleEvery    time.Duration
	warmup         time.Duration
	minTrendWindow time.Duration
	maxBody        int
	reportFile     string
}

// sizes are the body sizes the paths cycle through.
func (c config) sizes() []int {
	out := []int{200, 6 << 10, 120 << 10}
	if c.maxBody > 120<<10 {
		out = append(out, c.maxBody)
	}
	return out
}

func parseConfig(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.DurationVar(&c.duration, "duration", 30*time.Minute, "how long the load runs")
	fs.IntVar(&c.stableAgents, "stable-agents", 2, "agents that are never killed; their paths must never fail")
	fs.IntVar(&c.churnAgents, "churn-agents", 4, "agents killed and restarted in turn")
	fs.IntVar(&c.pathsPerAgent, "paths", 8, "paths served by each agent")
	fs.Float64Var(&c.rate, "rate", 25, "scrapes per second")
	fs.IntVar(&c.workers, "workers", 16, "concurrent scrapes at most")
	fs.DurationVar(&c.killEvery, "kill-every", 30*time.Second, "how often an agent is killed (alternately SIGKILL and SIGTERM)")
	fs.DurationVar(&c.down, "down", 2*time.Second, "how long a killed agent stays down")
	fs.DurationVar(&c.sampleEvery, "sample-every", 10*time.Second, "how often memory, goroutines and open files are sampled")
	fs.DurationVar(&c.warmup, "warmup", 0, "samples before this are not judged (default: a fifth of the duration, at most 2m)")
	fs.DurationVar(&c.minTrendWindow, "min-trend-window", time.Minute, "memory is judged only when the samples after the warm-up span at least this")
	fs.IntVar(&c.maxBody, "max-body", 1500<<10, "the largest body size, in bytes")
	fs.StringVar(&c.reportFile, "report", "", "also write the report to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.warmup == 0 {
		c.warmup = min(c.duration/5, 2*time.Minute)
	}
	switch {
	case c.duration <= 0, c.rate <= 0, c.workers < 1, c.killEvery <= 0, c.sampleEvery <= 0:
		return c, errors.New("duration, rate, workers, kill-every and sample-every must be positive")
	case c.stableAgents < 1 || c.churnAgents < 1 || c.pathsPerAgent < 1:
		return c, errors.New("at least one stable agent, one churn agent and one path per agent")
	}
	return c, nil
}

// agentSlot is one agent of the soak, restarted under the same name.
type agentSlot struct {
	name   string
	stable bool
	paths  []client.PathConfig
	mu     sync.Mutex
	c      *child
}

// run runs the soak and returns its report; the error is for a soak that
// could not run at all.
func run(ctx context.Context, args []string, out io.Writer) (*report, error) {
	cfg, err := parseConfig(args, out)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	targetSrv := &http.Server{Handler: targetHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = targetSrv.Serve(ln) }()
	defer targetSrv.Close()
	targetURL := "http://" + ln.Addr().String() + "/t/"

	proxy, err := startChild("proxy", "proxy", roleArgs{})
	if err != nil {
		return nil, err
	}
	defer proxy.kill()
	rep := &report{cfg: cfg, load: newLoadStats(), kills: map[string]int{}}
	rep.watched = append(rep.watched, &watched{name: "proxy", c: proxy})

	var slots []*agentSlot
	var paths []soakPath
	sizes := cfg.sizes()
	for i := range cfg.stableAgents + cfg.churnAgents {
		s := &agentSlot{stable: i < cfg.stableAgents}
		prefix := "c"
		if s.stable {
			prefix = "s"
		}
		s.name = fmt.Sprintf("%s%d", prefix, i)
		for k := range cfg.pathsPerAgent {
			name := fmt.Sprintf("%s_p%d", s.name, k)
			u := targetURL + name + "?size=" + strconv.Itoa(sizes[k%len(sizes)])
			if k%3 == 2 {
				u += "&gz=1"
			}
			s.paths = append(s.paths, client.PathConfig{Name: name, Path: name, URL: u})
			paths = append(paths, soakPath{name: name, stable: s.stable})
		}
		if s.c, err = startChild("agent "+s.name, "agent", roleArgs{Proxy: proxy.ready.Agent, Name: s.name, Paths: s.paths}); err != nil {
			return nil, err
		}
		defer func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.c.kill()
		}()
		if s.stable {
			rep.watched = append(rep.watched, &watched{name: "agent " + s.name, c: s.c})
		}
		slots = append(slots, s)
	}
	if err := waitPaths(ctx, proxy, len(paths), time.Minute); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "soak: proxy %s, %d agents, %d paths; running for %v\n", proxy.ready.Scrape, len(slots), len(paths), cfg.duration)

	lctx, stop := context.WithTimeout(ctx, cfg.duration)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { runLoad(lctx, proxy.ready.Scrape, paths, cfg.rate, cfg.workers, rep.load) })
	var probMu sync.Mutex
	wg.Go(func() {
		tk := time.NewTicker(cfg.sampleEvery)
		defer tk.Stop()
		for {
			for _, w := range rep.watched {
				if err := w.observe(time.Since(start)); err != nil {
					probMu.Lock()
					rep.fail("sample: %v", err)
					probMu.Unlock()
				}
			}
			select {
			case <-lctx.Done():
				return
			case <-tk.C:
			}
		}
	})
	wg.Go(func() {
		churn := slots[cfg.stableAgents:]
		tk := time.NewTicker(cfg.killEvery)
		defer tk.Stop()
		for n := 0; ; n++ {
			select {
			case <-lctx.Done():
				return
			case <-tk.C:
			}
			s := churn[n%len(churn)]
			sig, took, err := restart(lctx, s, n%2 == 0, cfg.down, proxy, targetURL)
			probMu.Lock()
			rep.kills[sig]++
			switch {
			case err != nil && lctx.Err() == nil:
				rep.fail("restart of agent %s: %v", s.name, err)
			case err == nil:
				rep.recoveries = append(rep.recoveries, took)
			}
			probMu.Unlock()
		}
	})
	wg.Wait()
	rep.elapsed = time.Since(start)
	if ctx.Err() != nil {
		return nil, errors.New("interrupted")
	}

	// Everything must stop cleanly, the proxy last.
	for _, s := range slots {
		s.mu.Lock()
		if err := s.c.stop(20 * time.Second); err != nil {
			rep.fail("%v", err)
		}
		s.mu.Unlock()
	}
	if err := proxy.stop(30 * time.Second); err != nil {
		rep.fail("%v\n%s", err, proxy.stderr.String())
	}
	rep.judge()
	rep.write(out)
	if cfg.reportFile != "" {
		var b strings.Builder
		rep.write(&b)
		if err := os.WriteFile(cfg.reportFile, []byte(b.String()), 0o644); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// restart kills s's agent (SIGKILL, or SIGTERM when graceful), keeps it
// down for a while, starts it again and measures how long until its first
// path scrapes correctly through the proxy.
func restart(ctx context.Context, s *agentSlot, hard bool, down time.Duration, proxy *child, targetURL string) (string, time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sig := "SIGTERM"
	if hard {
		sig = "SIGKILL"
		s.c.kill()
	} else if err := s.c.stop(20 * time.Second); err != nil {
		return sig, 0, err
	}
	select {
	case <-ctx.Done():
		return sig, 0, ctx.Err()
	case <-time.After(down):
	}
	began := time.Now()
	c, err := startChild("agent "+s.name, "agent", roleArgs{Proxy: proxy.ready.Agent, Name: s.name, Paths: s.paths})
	if err != nil {
		return sig, 0, err
	}
	s.c = c
	hc := &http.Client{Timeout: 10 * time.Second}
	p := s.paths[0].Path
	for ctx.Err() == nil {
		kind, _, _ := scrapeOnce(hc, "http://"+proxy.ready.Scrape+"/"+p, p, false)
		if kind == "ok" {
			return sig, time.Since(began), nil
		}
		if time.Since(began) > time.Minute {
			return sig, 0, fmt.Errorf("path %s not served again within a minute of the restart (last: %s)", p, kind)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return sig, 0, ctx.Err()
}

// waitPaths waits until the proxy has n paths registered.
func waitPaths(ctx context.Context, proxy *child, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		got, err := metricValue("http://"+proxy.ready.Stats+"/metrics", "proxy_path_map_size")
		if err == nil && int(got) == n {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the proxy has %v of %d paths after %v (%v)", got, n, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metricValue reads one unlabelled sample from a text exposition.
func metricValue(url, name string) (float64, error) {
	resp, err := statsClient.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no sample %s", name)
}
