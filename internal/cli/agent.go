package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/promproxy/promproxy/client"
)

// agentFile is the agent section of a config file.
type agentFile struct {
	Agent struct {
		Name        string `yaml:"name"`
		PathConfigs []struct {
			Name   string    `yaml:"name"`
			Path   string    `yaml:"path"`
			URL    string    `yaml:"url"`
			Labels yaml.Node `yaml:"labels"`
		} `yaml:"pathConfigs"`
	} `yaml:"agent"`
}

// RunAgent is the prometheus-agent command.
func RunAgent(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) error {
	opts := client.DefaultOptions()
	fs := flag.NewFlagSet("prometheus-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	getenv := func(k, def string) string {
		if v, ok := env(k); ok {
			return v
		}
		return def
	}
	config := fs.String("config", getenv("AGENT_CONFIG", ""), "agent config file (YAML) [AGENT_CONFIG]")
	proxy := fs.String("proxy", getenv("PROXY_HOSTNAME", ""), "proxy address host:port; a comma-separated list is tried in order [PROXY_HOSTNAME]")
	name := fs.String("name", getenv("AGENT_NAME", ""), "agent name [AGENT_NAME]")
	fs.BoolVar(&opts.Consolidated, "consolidated", false, "share paths with other consolidated agents")
	maxContent := fs.Int64("max_content_length_mbytes", opts.MaxContentLength>>20, "largest target body in MiB, enforced while reading")
	logLevel := fs.String("log_level", "info", "log level: trace, debug, info, warn, error, off")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	if *config != "" {
		raw, err := os.ReadFile(*config)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		var f agentFile
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil && err != io.EOF {
			return fmt.Errorf("config %s: %w", *config, err)
		}
		opts.AgentName = f.Agent.Name
		for i, pc := range f.Agent.PathConfigs {
			labels, err := decodeLabels(&pc.Labels)
			if err != nil {
				return fmt.Errorf("config %s: agent.pathConfigs[%d].labels: %w", *config, i, err)
			}
			opts.Paths = append(opts.Paths, client.PathConfig{Name: pc.Name, Path: pc.Path, URL: pc.URL, Labels: labels})
		}
	}
	if *proxy != "" {
		opts.ProxyURLs = strings.Split(*proxy, ",")
	}
	if *name != "" {
		opts.AgentName = *name
	}
	if opts.AgentName == "" {
		opts.AgentName, _ = os.Hostname()
	}
	opts.MaxContentLength = *maxContent << 20
	opts.Logger, opts.Registerer = log, prometheus.NewRegistry()
	a, err := client.New(opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "prometheus-agent %q serving %d paths via %s\n", opts.AgentName, len(opts.Paths), strings.Join(opts.ProxyURLs, ","))
	if err := a.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	return a.Shutdown(context.Background())
}

// decodeLabels accepts labels as a map or, as in the Kotlin agent's
// examples, as a JSON object in a string.
func decodeLabels(n *yaml.Node) (map[string]string, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		if strings.TrimSpace(n.Value) == "" {
			return nil, nil
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(n.Value), &m); err != nil {
			return nil, fmt.Errorf("not a JSON object of strings: %w", err)
		}
		return m, nil
	case yaml.MappingNode:
		var m map[string]string
		if err := n.Decode(&m); err != nil {
			return nil, err
		}
		return m, nil
	}
	return nil, fmt.Errorf("must be a map or a JSON string")
}
