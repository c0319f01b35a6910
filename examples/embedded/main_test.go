package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/promproxy/promproxy/server"
)

// TestEmbeddedAgentLeavesNoGoroutines runs a proxy and the embedded agent,
// scrapes through them, stops everything, and checks that no goroutine is
// left: Shutdown and Close must wait for all the agent's work.
func TestEmbeddedAgentLeavesNoGoroutines(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(*app) error
	}{
		{"Shutdown", func(a *app) error { return a.Shutdown(context.Background()) }},
		{"Close", func(a *app) error { return a.Close() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := server.DefaultOptions()
			opts.ListenAddr, opts.AgentListenAddr = "127.0.0.1:0", "127.0.0.1:0"
			opts.Registerer = prometheus.NewRegistry()
			p, err := server.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()

			a, err := startApp(p.AgentAddr().String(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: &http.Transport{}}
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := hc.Get("http://" + p.Addr().String() + "/embedded_metrics")
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 && strings.Contains(string(body), "go_goroutines") {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("no scrape through the proxy within 10s: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			hc.CloseIdleConnections()

			if err := tt.stop(a); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("proxy Run: %v", err)
			}
			goleak.VerifyNone(t)
		})
	}
}
