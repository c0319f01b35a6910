// Command bench measures the proxy against a direct scrape of the same
// target, in one run on one machine, and prints one table.
//
// It builds the two binaries, starts a target, the proxy and an agent as
// processes on 127.0.0.1, and drives them with an in-process,
// Prometheus-like load generator that checks every body byte for byte
// against the direct scrape. CPU and memory of the proxy and the agent are
// read from /proc over each measured interval. The 10,000-agent rows use an
// in-process fleet of protocol-level agents, each on its own HTTP/2
// connection.
//
//	go run ./bench              # everything, about 5 minutes
//	go run ./bench --quick      # shorter phases and a smaller fleet
//	go run ./bench --scenarios 10k-c1,1m-c8 --encodings gzip
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// allScenarios lists the scenario names in the order they run.
var allScenarios = []string{"10k-c1", "10k-c8", "10k-c64", "1m-c8", "20m-c8", "agent-idle", "fleet-idle", "fleet-reconnect"}

// options are the bench's settings.
type options struct {
	quick     bool
	scenarios map[string]bool
	encodings []string
	warmup    time.Duration
	phase     time.Duration
	rounds    int
	agents    int
	idleFor   time.Duration
	binDir    string
	profile   string
	args      []string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.quick, "quick", false, "short phases and a 2,000-agent fleet, for a check in about two minutes")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run: "+strings.Join(allScenarios, ", "))
	encs := fs.String("encodings", "gzip,plain", "target kinds for the scrape scenarios: gzip (compresses itself, like promhttp) and plain (never compresses)")
	fs.DurationVar(&o.warmup, "warmup", 0, "warm-up per scenario and path, not measured (default 2s, quick 1s)")
	fs.DurationVar(&o.phase, "phase", 0, "length of one measured phase (default 3s, quick 1s)")
	fs.IntVar(&o.rounds, "rounds", 2, "measured rounds per scenario; each round is one direct and one proxied phase, their order alternating")
	fs.IntVar(&o.agents, "agents", 0, "fleet size (default 10000, quick 2000)")
	fs.DurationVar(&o.idleFor, "idle", 0, "how long the fleet and the idle agent are measured at rest (default 15s, quick 4s)")
	fs.StringVar(&o.binDir, "bin", "", "use prometheus-proxy and prometheus-agent from this directory instead of building them")
	fs.StringVar(&o.profile, "profile", "", "write CPU and allocation profiles of the proxy under load into this directory (keep it out of the repository)")
	serveAddr := fs.String("serve-target", "", "internal: run as the target process on this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serveAddr != "" {
		return serveTarget(ctx, *serveAddr)
	}
	o.args = args
	o.setDefaults()
	o.scenarios = map[string]bool{}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ", "))
		}
		o.scenarios[s] = true
	}
	for _, e := range strings.Split(*encs, ",") {
		if e = strings.TrimSpace(e); e != "gzip" && e != "plain" {
			return fmt.Errorf("--encodings: %q is not gzip or plain", e)
		}
		o.encodings = append(o.encodings, e)
	}
	if o.rounds < 1 {
		return errors.New("--rounds must be at least 1")
	}
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer b.close()
	rows, runErr := b.runAll(ctx)
	b.printReport(stdout, rows)
	return runErr
}

func (o *options) setDefaults() {
	pick := func(d *time.Duration, normal, quick time.Duration) {
		if *d == 0 {
			*d = normal
			if o.quick {
				*d = quick
			}
		}
	}
	pick(&o.warmup, 2*time.Second, time.Second)
	pick(&o.phase, 3*time.Second, time.Second)
	pick(&o.idleFor, 15*time.Second, 4*time.Second)
	if o.agents == 0 {
		o.agents = 10000
		if o.quick {
			o.agents = 2000
		}
	}
}
