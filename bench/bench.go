package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// bench holds what every scenario shares: the binaries, the target and
// the reference bodies.
type bench struct {
	o          options
	log        io.Writer
	tmp        string
	proxyBin   string
	agentBin   string
	target     *proc
	targetBase string
	client     *http.Client
	refs       map[string]*reference // by "<size>/<enc>"
	started    time.Time
	loadStart  string
}

func newBench(ctx context.Context, o options, log io.Writer) (*bench, error) {
	b := &bench{o: o, log: log, client: newLoadClient(), refs: map[string]*reference{}, started: time.Now(), loadStart: loadAvg()}
	tmp, err := os.MkdirTemp("", "promproxy-bench-")
	if err != nil {
		return nil, err
	}
	b.tmp = tmp
	if o.binDir != "" {
		b.proxyBin, b.agentBin = filepath.Join(o.binDir, "prometheus-proxy"), filepath.Join(o.binDir, "prometheus-agent")
	} else {
		b.logf("building prometheus-proxy and prometheus-agent")
		if b.proxyBin, b.agentBin, err = buildBinaries(ctx, tmp); err != nil {
			b.close()
			return nil, err
		}
	}
	if err := b.startTarget(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s  %s\n", time.Since(b.started).Round(time.Second), fmt.Sprintf(format, args...))
}

func (b *bench) close() {
	b.target.stop()
	if b.tmp != "" {
		_ = os.RemoveAll(b.tmp)
	}
}

// startTarget runs this same program as the target process, so that the
// target's CPU is neither the load generator's nor the proxy's.
func (b *bench) startTarget(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if b.target, err = startProc("target", self, "--serve-target", addr); err != nil {
		return err
	}
	b.targetBase = "http://" + addr
	b.logf("target starting on %s (building its bodies)", addr)
	if err := b.waitReady(ctx, []string{b.targetBase + "/10k/plain"}, b.target); err != nil {
		return err
	}
	for size := range bodySizes {
		plain, _, err := fetchOnce(ctx, b.client, b.targetBase+"/"+size+"/plain", nil)
		if err != nil {
			return err
		}
		gz, hdr, err := fetchOnce(ctx, b.client, b.targetBase+"/"+size+"/gzip", map[string]string{"Accept-Encoding": "gzip"})
		if err != nil {
			return err
		}
		ref := &reference{plain: plain, gz: gz}
		if hdr.Get("Content-Encoding") != "gzip" {
			return fmt.Errorf("target /%s/gzip answered without gzip", size)
		}
		if _, err := (&reference{plain: plain}).check("gzip", gz, new(gzip.Reader), new(bytes.Buffer)); err != nil {
			return fmt.Errorf("target /%s/gzip: %w", size, err)
		}
		b.refs[size+"/plain"] = &reference{plain: plain}
		b.refs[size+"/gzip"] = ref
	}
	return nil
}

// waitReady polls urls until each answers 200, or fails when one of the
// processes exits or a minute passes.
func (b *bench) waitReady(ctx context.Context, urls []string, procs ...*proc) error {
	deadline := time.Now().Add(time.Minute)
	for _, u := range urls {
		for {
			for _, p := range procs {
				if err := p.exited(); err != nil {
					return err
				}
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, _, err := fetchOnce(rctx, b.client, u, scrapeHeaders)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready within a minute: %w", u, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// pair is a proxy and one agent, started fresh for a scenario so that its
// peak memory is its own.
type pair struct {
	proxy, agent *proc
	scrapeBase   string
	agentAddr    string
	adminBase    string
}

func (p *pair) stop() {
	if p == nil {
		return
	}
	p.agent.stop()
	p.proxy.stop()
}

// startPair starts a proxy and an agent serving paths (path → target URL)
// and waits until every path answers through the proxy.
func (b *bench) startPair(ctx context.Context, paths map[string]string) (*pair, error) {
	proxy, err := b.startProxy()
	if err != nil {
		return nil, err
	}
	if paths == nil {
		return proxy, nil
	}
	if err := b.startAgent(proxy, paths); err != nil {
		proxy.stop()
		return nil, err
	}
	var urls []string
	for path := range paths {
		urls = append(urls, proxy.scrapeBase+"/"+path)
	}
	if err := b.waitReady(ctx, urls, proxy.proxy, proxy.agent); err != nil {
		proxy.stop()
		return nil, err
	}
	b.logf("proxy pid %d, agent pid %d, %d paths ready", proxy.proxy.pid(), proxy.agent.pid(), len(paths))
	return proxy, nil
}

func (b *bench) startProxy() (*pair, error) {
	var ports [3]int
	for i := range ports {
		var err error
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	p := &pair{
		scrapeBase: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		agentAddr:  fmt.Sprintf("127.0.0.1:%d", ports[1]),
		adminBase:  fmt.Sprintf("http://127.0.0.1:%d", ports[2]),
	}
	args := []string{"--listen_host", "127.0.0.1", "--port", strconv.Itoa(ports[0]), "--agent_port", strconv.Itoa(ports[1]), "--log_level", "warn"}
	if b.o.profile != "" {
		args = append(args, "--admin", "--admin_port", strconv.Itoa(ports[2]), "--debug")
	}
	var err error
	if p.proxy, err = startProc("proxy", b.proxyBin, args...); err != nil {
		return nil, err
	}
	return p, nil
}

// startAgent writes a config file for paths and starts the agent binary.
func (b *bench) startAgent(p *pair, paths map[string]string) error {
	var cfg strings.Builder
	cfg.WriteString("agent:\n  name: bench-agent\n  pathConfigs:\n")
	for path, url := range paths {
		fmt.Fprintf(&cfg, "    - name: %s\n      path: %s\n      url: %s\n", path, path, url)
	}
	f, err := os.CreateTemp(b.tmp, "agent-*.yaml")
	if err != nil {
		return err
	}
	if _, err := f.WriteString(cfg.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	p.agent, err = startProc("agent", b.agentBin, "--config", f.Name(), "--proxy", p.agentAddr,
		"--log_level", "warn", "--max_content_length_mbytes", "64")
	return err
}

// saveProfile fetches a pprof profile from the proxy's admin listener.
func (b *bench) saveProfile(ctx context.Context, p *pair, query, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.adminBase+"/debug/pprof/"+query, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: status %d", name, resp.StatusCode)
	}
	if err := os.MkdirAll(b.o.profile, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(b.o.profile, name))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	_, err = io.Copy(w, resp.Body)
	return errors.Join(err, w.Flush(), f.Close())
}
