// Package agentconfig turns the prometheus-agent command's configuration
// files (YAML, TOML, JSON or HOCON, with the same keys, validation and
// error messages as the command) into client.Options, for programs that
// embed an agent and want to share a configuration file with the binary.
package agentconfig

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/config"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/internal/version"
)

// Load reads the agent section of the configuration file at path (a file
// name or an http(s) URL) and returns the matching options. Only the file
// and the defaults are consulted, not the command's flags or environment
// variables, so an embedding program gets the same options wherever it
// runs. The caller sets Logger and Registerer before calling client.New.
func Load(ctx context.Context, path string) (client.Options, error) {
	loaded, _, err := config.LoadAgent(ctx, config.Input{Args: []string{"--config", path}})
	if err != nil {
		return client.Options{}, err
	}
	return Options(&loaded.Config, loaded.Sources)
}

// Options maps a loaded agent configuration onto the client library's
// options. sources says which keys were set explicitly (see config.Loaded),
// which decides between a key and its deprecated alias.
func Options(cfg *config.Agent, sources map[string]string) (client.Options, error) {
	o := client.DefaultOptions()
	proxies, err := config.ProxyAddresses(cfg.Proxy.Hostname, cfg.Proxy.Port)
	if err != nil {
		return o, fmt.Errorf("agent.proxy.hostname: %w", err)
	}
	o.ProxyURLs = proxies
	o.AgentName = cfg.Name
	if o.AgentName == "" {
		host, _ := os.Hostname()
		o.AgentName = "Unnamed-" + host
	}
	o.Consolidated = cfg.Consolidated
	for _, pc := range cfg.PathConfigs {
		name := pc.Name
		if name == "" {
			name = pc.Path
		}
		o.Paths = append(o.Paths, client.PathConfig{Name: name, Path: pc.Path, URL: pc.URL, Labels: pc.Labels})
	}
	o.MaxConcurrentClients = cfg.HTTP.MaxConcurrentClients
	o.ScrapeTimeout = time.Second * time.Duration(cfg.ScrapeTimeoutSecs)
	o.ScrapeMaxRetries = cfg.ScrapeMaxRetries
	o.ClientTimeout = time.Second * time.Duration(cfg.HTTP.ClientTimeoutSecs)
	_, newSet := sources["agent.http.clientTimeoutSecs"]
	if _, oldSet := sources["agent.internal.cioTimeoutSecs"]; oldSet && !newSet {
		o.ClientTimeout = time.Second * time.Duration(cfg.Internal.CioTimeoutSecs)
	}
	o.MaxContentLength = int64(cfg.HTTP.MaxContentLengthMBytes) << 20
	o.MinGzipSize = cfg.MinGzipSizeBytes
	o.ChunkSize = cfg.ChunkContentSizeKbs << 10
	o.HeartbeatInterval = time.Second * time.Duration(cfg.Internal.HeartbeatMaxInactivitySecs)
	o.Backoff.Max = time.Second * time.Duration(cfg.Internal.ReconnectPauseSecs)
	o.Backoff.Initial = min(o.Backoff.Initial, o.Backoff.Max)
	o.Keepalive = keepalive(cfg.GRPC.KeepAliveTimeSecs, cfg.GRPC.KeepAliveTimeoutSecs)
	o.Version = version.Get().Version
	security(cfg, &o)
	return o, nil
}

// security maps the agent's TLS settings for the proxy channel
// (agent.tls.*), its token, and how https targets are verified
// (agent.http.trustStorePath, enableTrustAllX509Certificates). Any TLS
// setting turns TLS on for the proxy channel.
func security(cfg *config.Agent, o *client.Options) {
	o.TLSCertFile = cfg.TLS.CertChainFilePath
	o.TLSKeyFile = cfg.TLS.PrivateKeyFilePath
	o.TLSTrustFile = cfg.TLS.TrustCertCollectionFilePath
	o.TLSOverrideAuthority = cfg.TLS.OverrideAuthority
	o.AgentToken = cfg.AgentToken
	o.TargetTrustFile = cfg.HTTP.TrustStorePath
	o.TargetInsecureSkipVerify = cfg.HTTP.EnableTrustAllX509Certificates
}

// keepalive maps the gRPC keepalive keys; values <= 0 keep the defaults.
func keepalive(timeSecs, timeoutSecs int) transport.Keepalive {
	k := transport.DefaultKeepalive
	if timeSecs > 0 {
		k.Interval = time.Duration(timeSecs) * time.Second
	}
	if timeoutSecs > 0 {
		k.Timeout = time.Duration(timeoutSecs) * time.Second
	}
	return k
}
