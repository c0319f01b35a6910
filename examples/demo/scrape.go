package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// promHeaders are the request headers Prometheus sends when it scrapes.
var promHeaders = [][2]string{
	{"Accept", "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"},
	{"Accept-Encoding", "gzip"},
	{"X-Prometheus-Scrape-Timeout-Seconds", "10"},
}

// answer is a scrape's response as received, its body decompressed.
type answer struct {
	status string
	header http.Header
	wire   int // bytes on the wire
	body   []byte
}

// waitScrape scrapes url like Prometheus until the agent's path is
// registered and the scrape succeeds.
func waitScrape(ctx context.Context, url string, timeout time.Duration) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		a, err := scrapeOnce(ctx, hc, url)
		switch {
		case err == nil && a.status == "200 OK":
			return a, nil
		case err != nil:
			last = err.Error()
		default:
			last = a.status + ": " + strings.TrimSpace(string(a.body))
		}
		select {
		case <-ctx.Done():
			return answer{}, fmt.Errorf("no successful scrape of %s within %v; last answer: %s", url, timeout, last)
		case <-tick.C:
		}
	}
}

func scrapeOnce(ctx context.Context, hc *http.Client, url string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	for _, h := range promHeaders {
		req.Header.Set(h[0], h[1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.Status, header: resp.Header, wire: len(raw), body: raw}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return answer{}, err
		}
		if a.body, err = io.ReadAll(zr); err != nil {
			return answer{}, err
		}
	}
	return a, nil
}

// printScrape shows the scrape as Prometheus received it.
func printScrape(w io.Writer, url string, a answer) {
	fmt.Fprintf(w, "Scrape through the proxy, as Prometheus makes it:\n\n  GET %s\n", url)
	for _, h := range promHeaders {
		fmt.Fprintf(w, "  %s: %s\n", h[0], h[1])
	}
	fmt.Fprintf(w, "\n  HTTP %s\n", a.status)
	for _, k := range []string{"Content-Type", "Content-Encoding", "Content-Length"} {
		if v := a.header.Get(k); v != "" {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
	lines := strings.SplitAfter(string(a.body), "\n")
	const shown = 30
	for i, l := range lines {
		if i == shown {
			break
		}
		fmt.Fprintf(w, "  %s", l)
	}
	if n := len(lines) - shown; n > 0 {
		fmt.Fprintf(w, "  ... %d more lines; %d bytes in all, %d on the wire\n", n, len(a.body), a.wire)
	}
}

// commands is what an operator needs to reproduce and explore the demo.
type commands struct {
	proxy, agent          []string
	config                string
	scrapeAddr, agentAddr string
	url                   string
	logs                  []string
	once                  bool
}

func printCommands(w io.Writer, c commands) {
	fmt.Fprintf(w, `
The demo ran:
  %s
  %s
with %s:
%s
Try, while it runs%s:
  # a scrape through the proxy
  curl -s %s | head
  # a path no agent serves: 404, with the reason
  curl -s -i http://%s/no_such_path
  # the proxy's agents and their paths, as JSON (the Connect protocol)
  curl -s -H 'Content-Type: application/json' -d '{}' http://%s/promproxy.v1.ProxyService/ListAgents

A Prometheus job for this path:
  scrape_configs:
    - job_name: shop
      metrics_path: /%s
      static_configs:
        - targets: ['%s']
`, strings.Join(c.proxy, " "), strings.Join(c.agent, " "), c.config, indent(agentConfigFor(c)), whileNote(c.once),
		c.url, c.scrapeAddr, c.agentAddr, demoPath, c.scrapeAddr)
	if !c.once {
		fmt.Fprintf(w, "\nLogs: %s\n", strings.Join(c.logs, " "))
	}
}

func whileNote(once bool) string {
	if once {
		return " (run the demo without --once to keep it up)"
	}
	return ""
}

func agentConfigFor(c commands) string {
	b, err := os.ReadFile(c.config)
	if err != nil {
		return "(" + err.Error() + ")\n"
	}
	return string(b)
}

func indent(s string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		b.WriteString("    " + l)
	}
	return b.String()
}
