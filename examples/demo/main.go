// Command demo shows Prometheus Proxy working on one machine: it starts a
// sample target, the built prometheus-proxy and prometheus-agent on
// loopback, scrapes the target through the proxy as Prometheus would, and
// prints what came back along with the commands to try next.
//
//	go run ./examples/demo --bin bin          # keeps running until Ctrl-C
//	go run ./examples/demo --bin bin --once   # exits after the scrape
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// demoPath is the path the agent registers and Prometheus scrapes.
const demoPath = "shop_metrics"

var listeningRE = regexp.MustCompile(`prometheus-proxy listening: scrape (\S+), agents (\S+)`)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("bin", "bin", "directory holding the built prometheus-proxy and prometheus-agent")
	once := fs.Bool("once", false, "exit after showing the scrape instead of running until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return err
	}
	proxyBin, agentBin := filepath.Join(*bin, "prometheus-proxy"), filepath.Join(*bin, "prometheus-agent")
	for _, b := range []string{proxyBin, agentBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (build the binaries first: go tool -modfile=tools/go.mod task build)", err)
		}
	}
	dir, err := os.MkdirTemp("", "promproxy-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Children stop when run returns: SIGTERM first, as an operator would.
	childCtx, stopChildren := context.WithCancel(context.WithoutCancel(ctx))
	var children []*child
	defer func() {
		stopChildren()
		for i := len(children) - 1; i >= 0; i-- {
			children[i].wait()
		}
	}()

	tgt, err := startTarget(childCtx)
	if err != nil {
		return fmt.Errorf("start the sample target: %w", err)
	}
	defer tgt.close()

	proxyArgs := []string{"--listen_host", "127.0.0.1", "--port", "0", "--agent_port", "0"}
	proxy, err := startChild(childCtx, "proxy", proxyBin, filepath.Join(dir, "proxy.log"), proxyArgs...)
	if err != nil {
		return err
	}
	children = append(children, proxy)
	m, err := proxy.waitStdout(listeningRE, 30*time.Second)
	if err != nil {
		return err
	}
	scrapeAddr, agentAddr := m[1], m[2]

	config := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(config, []byte(agentConfig(tgt.url())), 0o600); err != nil {
		return err
	}
	agentArgs := []string{"--config", config, "--proxy", agentAddr}
	agent, err := startChild(childCtx, "agent", agentBin, filepath.Join(dir, "agent.log"), agentArgs...)
	if err != nil {
		return err
	}
	children = append(children, agent)

	url := "http://" + scrapeAddr + "/" + demoPath
	fmt.Fprintf(stdout, "Sample target  %s\nProxy          scrape %s, agents %s\nAgent          path /%s -> %s\n\n", tgt.url(), scrapeAddr, agentAddr, demoPath, tgt.url())
	ans, err := waitScrape(ctx, url, 30*time.Second)
	if err != nil {
		for _, c := range children {
			c.dumpLog(stderr)
		}
		return err
	}
	printScrape(stdout, url, ans)
	printCommands(stdout, commands{
		proxy: append([]string{proxyBin}, proxyArgs...), agent: append([]string{agentBin}, agentArgs...),
		config: config, scrapeAddr: scrapeAddr, agentAddr: agentAddr, url: url,
		logs: []string{proxy.logPath, agent.logPath}, once: *once,
	})
	if *once {
		return nil
	}
	fmt.Fprintln(stdout, "\nRunning; press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nStopping.")
		return nil
	case <-proxy.exited:
		return errors.New("the proxy exited unexpectedly; see " + proxy.logPath)
	case <-agent.exited:
		return errors.New("the agent exited unexpectedly; see " + agent.logPath)
	}
}

// agentConfig is the agent's YAML file, in the format operators write.
func agentConfig(targetURL string) string {
	return fmt.Sprintf(`agent:
  name: demo-agent
  pathConfigs:
    - name: "Shop service"
      path: %s
      url: %s
      labels: '{"team": "shop", "env": "demo"}'
`, demoPath, targetURL)
}
