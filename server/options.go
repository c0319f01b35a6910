package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/internal/transport"
)

// ConsolidatedMode chooses how a scrape of a path served by several
// consolidated agents is answered.
type ConsolidatedMode string

const (
	// ConsolidatedMerge scrapes every agent of the path and concatenates
	// their bodies, keeping a single OpenMetrics "# EOF". Use it when each
	// agent serves different series under one path. The scrape fails if any
	// agent fails, so Prometheus never sees a silently partial body.
	ConsolidatedMerge ConsolidatedMode = "merge"
	// ConsolidatedFailover scrapes one agent, rotating between them, and
	// moves on to the next when that agent cannot answer. Use it when the
	// agents are redundant copies, where merging would duplicate series.
	ConsolidatedFailover ConsolidatedMode = "failover"
)

// Options configures a Proxy. Start from DefaultOptions.
type Options struct {
	// ListenAddr is the scrape listener Prometheus talks to (--port).
	ListenAddr string
	// AgentListenAddr is the listener for agent sessions (--agent_port).
	AgentListenAddr string
	// AdminEnabled turns on the admin listener (--admin).
	AdminEnabled bool
	// AdminListenAddr is the admin listener (--admin_port).
	AdminListenAddr string
	// MetricsEnabled turns on the metrics listener (--metrics).
	MetricsEnabled bool
	// MetricsListenAddr is the metrics listener (--metrics_port).
	MetricsListenAddr string
	// Debug exposes pprof and the goroutine dump on the admin listener.
	Debug bool

	// ScrapeRequestTimeout caps every scrape; Prometheus' own
	// X-Prometheus-Scrape-Timeout-Seconds wins when it is shorter.
	ScrapeRequestTimeout time.Duration
	// MaxAgentInactivity evicts an agent the proxy has not heard from for
	// this long.
	MaxAgentInactivity time.Duration
	// StaleAgentCheckInterval is how often agents are checked for
	// inactivity.
	StaleAgentCheckInterval time.Duration
	// HeartbeatInterval is how often agents are asked to send a heartbeat
	// when they are otherwise idle. It must stay well under
	// MaxAgentInactivity (four heartbeats fit in the default 60 s) and
	// under the keepalive interval, or idle sessions exchange PINGs too.
	HeartbeatInterval time.Duration
	// RegistrationTimeout bounds how long a new session may take to send its
	// RegisterAgent message.
	RegistrationTimeout time.Duration
	// MaxUnzippedContentSize limits a body the proxy has to decompress, for
	// a client that does not accept gzip (maxUnzippedContentSizeMBytes).
	MaxUnzippedContentSize int64
	// MaxMessageSize limits one message on an agent session. It must be
	// larger than the agents' chunk size plus a little framing.
	MaxMessageSize int
	// ScrapeCredit is how many result frames of one scrape may be in flight
	// from the agent before the proxy has written them to Prometheus.
	ScrapeCredit uint32
	// ConsolidatedMode chooses how a path with several consolidated agents
	// is scraped.
	ConsolidatedMode ConsolidatedMode
	// ShutdownGracePeriod is how long in-flight scrapes may take to finish
	// once shutdown starts.
	ShutdownGracePeriod time.Duration
	// Keepalive controls the HTTP/2 PINGs on agent connections.
	Keepalive transport.Keepalive
	// Version is reported to agents and on /version.
	Version string
	// MetricsPath is the path of the metrics endpoint on the metrics
	// listener; empty means "/metrics".
	MetricsPath string
	// UnhealthyInFlightScrapes makes /healthcheck report unhealthy while
	// more scrapes than this are in flight; 0 disables the check.
	UnhealthyInFlightScrapes int

	// TLSCertFile and TLSKeyFile turn on TLS on the agent listener (--cert,
	// --key). The files are reloaded when they change; connected agents
	// keep their connections.
	TLSCertFile string
	TLSKeyFile  string
	// TLSTrustFile makes the agent listener require a client certificate
	// signed by one of the file's CAs: mutual TLS (--trust). It needs
	// TLSCertFile and TLSKeyFile.
	TLSTrustFile string
	// AgentToken is the pre-shared token every agent must send (--agent_token,
	// AGENT_TOKEN). With Identities it acts as one more identity, allowed
	// every path. It is never logged.
	AgentToken string
	// Identities are the per-agent identities (proxy.auth): each limits the
	// paths its agents may register and owns the paths they serve.
	Identities []Identity
	// WebConfigFile is a Prometheus web configuration file
	// (--web.config.file, the format every Prometheus exporter takes) applied to the
	// scrape, admin and metrics listeners: TLS, client certificates and
	// basic auth. The agent listener is configured by the TLS options above.
	WebConfigFile string

	// Logger receives the proxy's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the proxy's metrics. Nil disables them.
	Registerer prometheus.Registerer
	// Gatherer is served on the metrics listener. Nil serves Registerer when
	// it is also a Gatherer.
	Gatherer prometheus.Gatherer
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		ListenAddr:              ":8080",
		AgentListenAddr:         ":50051",
		AdminListenAddr:         ":8092",
		MetricsListenAddr:       ":8082",
		ScrapeRequestTimeout:    90 * time.Second,
		MaxAgentInactivity:      60 * time.Second,
		StaleAgentCheckInterval: 10 * time.Second,
		HeartbeatInterval:       15 * time.Second,
		RegistrationTimeout:     15 * time.Second,
		MaxUnzippedContentSize:  10 << 20,
		MaxMessageSize:          8 << 20,
		ScrapeCredit:            16,
		ConsolidatedMode:        ConsolidatedMerge,
		ShutdownGracePeriod:     10 * time.Second,
		Keepalive:               transport.DefaultKeepalive,
		Version:                 "dev",
	}
}

func (o *Options) validate() error {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("server: option %s = %v: %s", field, v, want))
	}
	if o.ListenAddr == "" {
		bad("ListenAddr", `""`, "an address to listen on is required")
	}
	if o.AgentListenAddr == "" {
		bad("AgentListenAddr", `""`, "an address to listen on is required")
	}
	if o.AdminEnabled && o.AdminListenAddr == "" {
		bad("AdminListenAddr", `""`, "required when the admin listener is enabled")
	}
	if o.MetricsEnabled && o.MetricsListenAddr == "" {
		bad("MetricsListenAddr", `""`, "required when the metrics listener is enabled")
	}
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"ScrapeRequestTimeout", o.ScrapeRequestTimeout},
		{"MaxAgentInactivity", o.MaxAgentInactivity},
		{"StaleAgentCheckInterval", o.StaleAgentCheckInterval},
		{"HeartbeatInterval", o.HeartbeatInterval},
		{"RegistrationTimeout", o.RegistrationTimeout},
		{"ShutdownGracePeriod", o.ShutdownGracePeriod},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad(p.name, p.v, "must be greater than 0")
		}
	}
	if o.UnhealthyInFlightScrapes < 0 {
		bad("UnhealthyInFlightScrapes", o.UnhealthyInFlightScrapes, "must not be negative")
	}
	if o.MaxUnzippedContentSize <= 0 {
		bad("MaxUnzippedContentSize", o.MaxUnzippedContentSize, "must be greater than 0")
	}
	if o.MaxMessageSize < 64<<10 {
		bad("MaxMessageSize", o.MaxMessageSize, "must be at least 65536")
	}
	if o.ScrapeCredit < 2 {
		bad("ScrapeCredit", o.ScrapeCredit, "must be at least 2")
	}
	switch o.ConsolidatedMode {
	case ConsolidatedMerge, ConsolidatedFailover:
	default:
		bad("ConsolidatedMode", fmt.Sprintf("%q", o.ConsolidatedMode), `must be "merge" or "failover"`)
	}
	errs = append(errs, o.validateSecurity()...)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}
