// Command prometheus-proxy runs the proxy: Prometheus scrapes it, and it
// forwards each scrape to the agent that serves the path.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/promproxy/promproxy/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts a graceful shutdown; restoring the default
	// handlers then lets a second signal end the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := cli.RunProxy(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus-proxy:", err)
		os.Exit(1)
	}
}
