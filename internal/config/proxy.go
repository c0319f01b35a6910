package config

// Proxy is the configuration of prometheus-proxy: the `proxy` section of a
// config file. Every field carries its file key (koanf), and where the
// Kotlin proxy had them, its long flag, short flag and environment
// variable; help is the text of --usage and docs/configuration.md.
type Proxy struct {
	HTTP struct {
		Port                  int  `koanf:"port" flag:"port" short:"p" env:"PROXY_PORT" check:"listenport" help:"Port Prometheus scrapes (http://proxy:PORT/<path>)."`
		IdleTimeoutSecs       int  `koanf:"idleTimeoutSecs" check:"positive" compat:"the scrape listener closes idle keep-alive connections after 2 minutes" help:"Idle timeout of scrape connections."`
		RequestLoggingEnabled bool `koanf:"requestLoggingEnabled" compat:"every scrape is logged at debug level; set logLevel to debug to see them" help:"Log every scrape request."`
	} `koanf:"http"`
	Agent struct {
		Port int `koanf:"port" flag:"agent_port" short:"a" env:"AGENT_PORT" check:"listenport" help:"Port agents connect to."`
	} `koanf:"agent"`
	AgentToken              string         `koanf:"agentToken" flag:"agent_token" env:"AGENT_TOKEN" secret:"true" check:"token" help:"Pre-shared token every agent must present; empty disables the check. With proxy.auth it is one more identity, allowed every path."`
	Auth                    []AuthIdentity `koanf:"auth" help:"Per-agent identities: a list of {name, token, certSubject, certSANs, paths}. An agent proves its identity with the token, a client certificate matching certSubject/certSANs (mutual TLS), or both, and may register only paths matching the identity's globs (* and ?; an empty list allows all). Config file only."`
	WebConfigFile           string         `koanf:"webConfigFile" flag:"web.config.file" env:"WEB_CONFIG_FILE" path:"true" new:"true" help:"Prometheus web configuration file (exporter-toolkit format: TLS, client certificates, basic auth) for the scrape, admin and metrics listeners; the agent port uses proxy.tls instead."`
	TransportFilterDisabled bool           `koanf:"transportFilterDisabled" flag:"tf_disabled" env:"TRANSPORT_FILTER_DISABLED" compat:"a closed agent stream is always detected at once; there is no gRPC transport filter to disable" help:"Disable the gRPC transport filter."`
	ReflectionDisabled      bool           `koanf:"reflectionDisabled" flag:"ref_disabled" env:"REFLECTION_DISABLED" compat:"gRPC reflection is not served" help:"Disable gRPC reflection."`
	LogLevel                string         `koanf:"logLevel" flag:"log_level" env:"PROXY_LOG_LEVEL" check:"loglevel" help:"Log level: trace, debug, info, warn, error or off."`
	LogFormat               string         `koanf:"logFormat" flag:"log_format" env:"PROXY_LOG_FORMAT" check:"oneof=text|json" new:"true" help:"Log format: text (human-readable) or json (for log shippers)."`
	ListenHost              string         `koanf:"listenHost" flag:"listen_host" env:"PROXY_LISTEN_HOST" new:"true" help:"Address every listener binds to; empty means all interfaces."`
	AdaptiveProcsDisabled   bool           `koanf:"adaptiveProcsDisabled" flag:"adaptive_procs_disabled" env:"ADAPTIVE_PROCS_DISABLED" new:"true" help:"Keep GOMAXPROCS at the Go runtime's default. Otherwise a process whose load stays under 0.3 cores for 2 s runs on one processor, which saves thread wake-ups, and gets every processor back within 250 ms of its load reaching 0.6 cores (1 s when it was all but idle). Setting the GOMAXPROCS environment variable also keeps the default."`
	ConsolidatedMode        string         `koanf:"consolidatedMode" flag:"consolidated_mode" env:"CONSOLIDATED_MODE" check:"oneof=merge|failover" new:"true" help:"How a path served by several consolidated agents is scraped: merge (scrape all, concatenate bodies) or failover (scrape one, move on when it fails)."`

	Service struct {
		Discovery struct {
			Enabled      bool   `koanf:"enabled" flag:"sd_enabled" env:"SD_ENABLED" help:"Serve Prometheus HTTP service discovery."`
			Path         string `koanf:"path" flag:"sd_path" env:"SD_PATH" check:"segment" help:"Path of the service discovery endpoint."`
			TargetPrefix string `koanf:"targetPrefix" flag:"sd_target_prefix" env:"SD_TARGET_PREFIX" check:"httpurl" help:"URL prefix of each target listed by service discovery."`
		} `koanf:"discovery"`
	} `koanf:"service"`

	Admin   ProxyAdmin `koanf:"admin"`
	Metrics Metrics    `koanf:"metrics"`
	TLS     TLS        `koanf:"tls"`

	UI struct {
		Enabled                bool   `koanf:"enabled" flag:"ui" env:"UI_ENABLED" help:"Serve the operational web dashboard on its own port."`
		Port                   int    `koanf:"port" flag:"ui_port" env:"UI_PORT" check:"listenport" help:"Port of the web dashboard."`
		Path                   string `koanf:"path" flag:"ui_path" env:"UI_PATH" check:"segment" help:"Path of the web dashboard."`
		RefreshIntervalSecs    int    `koanf:"refreshIntervalSecs" check:"positive" help:"How often the dashboard refreshes its counters."`
		RecentScrapesQueueSize int    `koanf:"recentScrapesQueueSize" check:"positive" help:"Recent scrapes kept for the dashboard."`
	} `koanf:"ui"`

	GRPC struct {
		HandshakeTimeoutSecs        int  `koanf:"handshakeTimeoutSecs" flag:"handshake_timeout_secs" env:"HANDSHAKE_TIMEOUT_SECS" group:"grpc" check:"positive_or_unset" compat:"TLS handshakes are bounded by the listener's header timeout" help:"Handshake timeout."`
		KeepAliveTimeSecs           int  `koanf:"keepAliveTimeSecs" flag:"keepalive_time_secs" env:"KEEPALIVE_TIME_SECS" group:"grpc" check:"positive_or_unset" help:"Seconds an agent connection may be silent before the proxy sends an HTTP/2 PING (-1: default)."`
		KeepAliveTimeoutSecs        int  `koanf:"keepAliveTimeoutSecs" flag:"keepalive_timeout_secs" env:"KEEPALIVE_TIMEOUT_SECS" group:"grpc" check:"positive_or_unset" help:"Seconds to wait for a PING's answer before the connection is closed (-1: default)."`
		PermitKeepAliveWithoutCalls bool `koanf:"permitKeepAliveWithoutCalls" flag:"permit_keepalive_without_calls" env:"PERMIT_KEEPALIVE_WITHOUT_CALLS" group:"grpc" compat:"agent PINGs are always accepted" help:"Allow agent PINGs without active streams."`
		PermitKeepAliveTimeSecs     int  `koanf:"permitKeepAliveTimeSecs" flag:"permit_keepalive_time_secs" env:"PERMIT_KEEPALIVE_TIME_SECS" group:"grpc" check:"positive_or_unset" compat:"agent PINGs are not rate-policed" help:"Minimum interval between agent PINGs."`
		MaxConnectionIdleSecs       int  `koanf:"maxConnectionIdleSecs" flag:"max_connection_idle_secs" env:"MAX_CONNECTION_IDLE_SECS" group:"grpc" check:"positive_or_unset" compat:"an agent connection lives as long as its session" help:"Maximum idle time of an agent connection."`
		MaxConnectionAgeSecs        int  `koanf:"maxConnectionAgeSecs" flag:"max_connection_age_secs" env:"MAX_CONNECTION_AGE_SECS" group:"grpc" check:"positive_or_unset" compat:"an agent connection lives as long as its session" help:"Maximum lifetime of an agent connection."`
		MaxConnectionAgeGraceSecs   int  `koanf:"maxConnectionAgeGraceSecs" flag:"max_connection_age_grace_secs" env:"MAX_CONNECTION_AGE_GRACE_SECS" group:"grpc" check:"positive_or_unset" compat:"an agent connection lives as long as its session" help:"Grace period after the maximum age."`
	} `koanf:"grpc"`

	Internal struct {
		StaleAgentCheckEnabled            bool   `koanf:"staleAgentCheckEnabled" help:"Evict agents that have been silent for maxAgentInactivitySecs."`
		MaxAgentInactivitySecs            int    `koanf:"maxAgentInactivitySecs" check:"positive" help:"Seconds of silence after which an agent is evicted."`
		StaleAgentCheckPauseSecs          int    `koanf:"staleAgentCheckPauseSecs" check:"positive" help:"Seconds between checks for silent agents."`
		ScrapeRequestTimeoutSecs          int    `koanf:"scrapeRequestTimeoutSecs" check:"positive" help:"Longest a scrape may take; Prometheus' own scrape timeout wins when shorter."`
		ScrapeRequestBacklogUnhealthySize int    `koanf:"scrapeRequestBacklogUnhealthySize" check:"positive" compat:"scrape requests are never queued on the proxy" help:"Backlog above which /healthcheck reports unhealthy."`
		ScrapeRequestMapUnhealthySize     int    `koanf:"scrapeRequestMapUnhealthySize" check:"nonneg" help:"Scrapes in flight above which /healthcheck reports unhealthy; 0 disables the check."`
		ChunkContextMapUnhealthySize      int    `koanf:"chunkContextMapUnhealthySize" check:"positive" compat:"chunked bodies are streamed, never collected in a map" help:"Chunked transfers above which /healthcheck reports unhealthy."`
		MaxZippedContentSizeMBytes        int    `koanf:"maxZippedContentSizeMBytes" check:"positive" compat:"the agent's maxContentLengthMBytes bounds every body at its source" help:"Largest compressed body accepted from an agent, in MiB."`
		MaxUnzippedContentSizeMBytes      int    `koanf:"maxUnzippedContentSizeMBytes" check:"positive" help:"Largest body the proxy decompresses for a client that does not accept gzip, in MiB."`
		ShutdownGracePeriodSecs           int    `koanf:"shutdownGracePeriodSecs" flag:"shutdown_grace_secs" env:"SHUTDOWN_GRACE_PERIOD_SECS" check:"positive" new:"true" help:"On SIGTERM, seconds scrapes in flight get to finish before the proxy stops."`
		Zipkin                            Zipkin `koanf:"zipkin"`
		Blitz                             struct {
			Enabled bool   `koanf:"enabled" compat:"Blitz load-test verification is not served" help:"Serve the Blitz verification path."`
			Path    string `koanf:"path" compat:"Blitz load-test verification is not served" help:"Blitz verification path."`
		} `koanf:"blitz"`
	} `koanf:"internal"`
}

// AuthIdentity is one entry of proxy.auth: an agent identity, how an agent
// proves it holds it, and the paths it may register.
type AuthIdentity struct {
	Name        string   `koanf:"name" help:"Identity name, unique."`
	Token       string   `koanf:"token" secret:"true" help:"Token agents of this identity present; may be empty when the identity is bound to a certificate."`
	CertSubject string   `koanf:"certSubject" help:"Client certificate subject (RFC 2253, e.g. CN=agent-a,O=Team A) or common name agents of this identity present; needs mutual TLS."`
	CertSANs    []string `koanf:"certSANs" help:"Client certificate subject alternative names (DNS, URI, e-mail or IP), any of which identifies this identity; needs mutual TLS."`
	Paths       []string `koanf:"paths" help:"Path globs this identity may register; empty allows all."`
}

// ProxyAdmin is the proxy's admin listener.
type ProxyAdmin struct {
	Admin                   `koanf:",squash"`
	RecentRequestsQueueSize int `koanf:"recentRequestsQueueSize" check:"positive" compat:"the debug page is replaced by /threaddump and pprof" help:"Recent requests kept for the debug page."`
}

// DefaultProxy returns the proxy's defaults: the Kotlin proxy's unless
// docs/migrating-from-kotlin.md says otherwise.
func DefaultProxy() Proxy {
	var p Proxy
	p.HTTP.Port = 8080
	p.HTTP.IdleTimeoutSecs = 45
	p.HTTP.RequestLoggingEnabled = true
	p.Agent.Port = 50051
	p.LogLevel = "info"
	p.LogFormat = "text"
	p.ConsolidatedMode = "merge"
	p.Service.Discovery.Path = "discovery"
	p.Service.Discovery.TargetPrefix = "http://localhost:8080/"
	p.Admin.Admin = defaultAdmin(8092)
	p.Admin.RecentRequestsQueueSize = 50
	p.Metrics = defaultMetrics(8082)
	p.UI.Port = 8094
	p.UI.Path = "ui"
	p.UI.RefreshIntervalSecs = 2
	p.UI.RecentScrapesQueueSize = 200
	p.GRPC.HandshakeTimeoutSecs = 120
	p.GRPC.KeepAliveTimeSecs = 20 // longer than the 15 s heartbeat: see transport.DefaultKeepalive
	p.GRPC.KeepAliveTimeoutSecs = 5
	p.GRPC.PermitKeepAliveTimeSecs = 300
	p.GRPC.MaxConnectionIdleSecs = intMax
	p.GRPC.MaxConnectionAgeSecs = intMax
	p.GRPC.MaxConnectionAgeGraceSecs = intMax
	p.Internal.StaleAgentCheckEnabled = true
	p.Internal.MaxAgentInactivitySecs = 60
	p.Internal.StaleAgentCheckPauseSecs = 10
	p.Internal.ScrapeRequestTimeoutSecs = 90
	p.Internal.ScrapeRequestBacklogUnhealthySize = 25
	p.Internal.ChunkContextMapUnhealthySize = 25
	p.Internal.MaxZippedContentSizeMBytes = 5
	p.Internal.MaxUnzippedContentSizeMBytes = 10
	p.Internal.ShutdownGracePeriodSecs = 10
	p.Internal.Zipkin = defaultZipkin("prometheus-proxy")
	return p
}

// intMax is the Kotlin proxy's "unlimited" for its gRPC connection limits.
const intMax = 2147483647
