// Command soak runs a proxy and many agents, each in its own process, under
// a steady scrape load for a long time, killing and restarting agents as it
// goes. It checks every body Prometheus would receive, samples the memory,
// goroutines and open files of the proxy and of the agents that are never
// killed, and fails when any body is wrong, when the never-killed agents'
// paths fail, or when memory or goroutines trend upwards.
//
//	go run ./soak --duration 30m
//
// The processes are this same binary started again in a role (proxy or
// agent) chosen by the SOAK_ROLE environment variable; they run the server
// and client libraries exactly as the commands do.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if role := os.Getenv(roleEnv); role != "" {
		err = runRole(ctx, role, os.Getenv(roleArgsEnv), os.Stdout)
	} else {
		var rep *report
		rep, err = run(ctx, os.Args[1:], os.Stdout)
		if err == nil && rep != nil && !rep.passed() {
			err = fmt.Errorf("soak failed: %s", rep.failures())
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}
