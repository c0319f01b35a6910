package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/promproxy/promproxy/internal/testlog"
)

// TestMain lets the test binary play the soak's child processes too: the
// soak starts its own executable again, which here is this test binary.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := runRole(ctx, role, os.Getenv(roleArgsEnv), os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The soak owns processes, connections and goroutines; none may
	// outlive a run.
	goleak.VerifyTestMain(m)
}

// TestSoakShort is the soak that CI runs: 20 s (10 s with -short) of load
// on a proxy and four agents, two of which are restarted in turn. It checks
// every body and the never-killed agents' paths; memory trends need a
// longer run (the soak task) to be judged.
func TestSoakShort(t *testing.T) {
	t.Parallel()
	duration := "20s"
	if testing.Short() {
		duration = "10s"
	}
	rep, err := run(t.Context(), []string{
		"--duration", duration, "--stable-agents", "2", "--churn-agents", "2", "--paths", "4",
		"--rate", "25", "--workers", "8", "--kill-every", "3s", "--down", "500ms",
		"--sample-every", "1s", "--warmup", "4s", "--max-body", "120000",
	}, testlog.Writer(t))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.passed() {
		t.Fatalf("soak failed: %s", rep.failures())
	}
	if len(rep.recoveries) == 0 || rep.kills["SIGKILL"] == 0 {
		t.Fatalf("no agent was killed and recovered: kills %v, recoveries %v", rep.kills, rep.recoveries)
	}
	if st := rep.load.classes["stable"]; st.ok < 50 {
		t.Fatalf("only %d good scrapes of the stable paths", st.ok)
	}
}
