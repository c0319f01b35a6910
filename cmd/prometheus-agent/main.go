// Command prometheus-agent runs an agent: it connects out to a proxy and
// serves scrapes of the targets in its configuration.
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
	if err := cli.RunAgent(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, "prometheus-agent:", err)
		os.Exit(1)
	}
}
