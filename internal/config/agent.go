package config

// Agent is the configuration of prometheus-agent: the `agent` section of a
// config file. Tags are as on Proxy.
type Agent struct {
	Name                    string `koanf:"name" flag:"name" short:"n" env:"AGENT_NAME" help:"Agent name shown on the proxy; empty means Unnamed-<hostname>."`
	Consolidated            bool   `koanf:"consolidated" flag:"consolidated" short:"o" env:"CONSOLIDATED" help:"Share paths with other consolidated agents instead of displacing them."`
	TransportFilterDisabled bool   `koanf:"transportFilterDisabled" flag:"tf_disabled" env:"TRANSPORT_FILTER_DISABLED" compat:"a closed stream is always detected at once; there is no gRPC transport filter to disable" help:"Disable the gRPC transport filter."`
	AgentToken              string `koanf:"agentToken" flag:"agent_token" env:"AGENT_TOKEN" secret:"true" check:"token" help:"Token presented to the proxy; empty sends none."`
	ChunkContentSizeKbs     int    `koanf:"chunkContentSizeKbs" flag:"chunk" env:"CHUNK_CONTENT_SIZE_KBS" check:"range=1..4096" help:"Bodies larger than this many KiB are sent in chunks of this size."`
	MinGzipSizeBytes        int    `koanf:"minGzipSizeBytes" flag:"gzip" env:"MIN_GZIP_SIZE_BYTES" check:"nonneg" help:"Bodies at least this large are gzipped before they are sent to the proxy."`
	ScrapeTimeoutSecs       int    `koanf:"scrapeTimeoutSecs" flag:"timeout" env:"SCRAPE_TIMEOUT_SECS" check:"positive" help:"Longest a target fetch may take, retries included; the proxy's deadline wins when shorter."`
	ScrapeMaxRetries        int    `koanf:"scrapeMaxRetries" flag:"max_retries" env:"SCRAPE_MAX_RETRIES" check:"nonneg" help:"Retries of a failed target fetch; 0 disables retries."`
	LogLevel                string `koanf:"logLevel" flag:"log_level" env:"AGENT_LOG_LEVEL" check:"loglevel" help:"Log level: trace, debug, info, warn, error or off."`
	LogFormat               string `koanf:"logFormat" flag:"log_format" env:"AGENT_LOG_FORMAT" check:"oneof=text|json" new:"true" help:"Log format: text (human-readable) or json (for log shippers)."`
	ListenHost              string `koanf:"listenHost" flag:"listen_host" env:"AGENT_LISTEN_HOST" new:"true" help:"Address the admin and metrics listeners bind to; empty means all interfaces."`
	AdaptiveProcsDisabled   bool   `koanf:"adaptiveProcsDisabled" flag:"adaptive_procs_disabled" env:"ADAPTIVE_PROCS_DISABLED" new:"true" help:"Keep GOMAXPROCS at the Go runtime's default. Otherwise a process whose load stays under 0.3 cores for 2 s runs on one processor, which saves thread wake-ups, and gets every processor back within 250 ms of its load reaching 0.6 cores (1 s when it was all but idle). Setting the GOMAXPROCS environment variable also keeps the default."`
	WebConfigFile           string `koanf:"webConfigFile" flag:"web.config.file" env:"WEB_CONFIG_FILE" path:"true" new:"true" help:"Prometheus web configuration file (exporter-toolkit format: TLS, client certificates, basic auth) for the admin and metrics listeners."`

	Proxy struct {
		Hostname string `koanf:"hostname" flag:"proxy" short:"p" env:"PROXY_HOSTNAME" check:"proxylist" help:"Proxy to connect to: host, host:port, or https://host:port; a comma-separated list is tried in order (failover)."`
		Port     int    `koanf:"port" check:"port" help:"Proxy port used when hostname has none."`
	} `koanf:"proxy"`

	HTTP struct {
		EnableTrustAllX509Certificates bool   `koanf:"enableTrustAllX509Certificates" flag:"trust_all_x509" env:"TRUST_ALL_X509_CERTIFICATES" help:"Do not verify the certificates of https targets (development only)."`
		TrustStorePath                 string `koanf:"trustStorePath" flag:"https_truststore" env:"HTTPS_TRUST_STORE_PATH" path:"true" help:"PEM CA bundle whose CAs are added to the system roots for verifying https targets (convert a Java keystore to PEM first)."`
		TrustStorePassword             string `koanf:"trustStorePassword" flag:"https_truststore_password" env:"HTTPS_TRUST_STORE_PASSWORD" secret:"true" compat:"the trust store is a PEM bundle, which has no password; convert a Java keystore to PEM (docs/security.md)" help:"Password of the trust store."`
		MaxConcurrentClients           int    `koanf:"maxConcurrentClients" flag:"max_concurrent_clients" env:"MAX_CONCURRENT_CLIENTS" check:"positive" help:"Concurrent fetches of one path's target."`
		ClientTimeoutSecs              int    `koanf:"clientTimeoutSecs" flag:"client_timeout_secs" env:"CLIENT_TIMEOUT_SECS" check:"positive" help:"Timeout of every HTTP request to a target."`
		MaxContentLengthMBytes         int    `koanf:"maxContentLengthMBytes" flag:"max_content_length_mbytes" env:"AGENT_MAX_CONTENT_LENGTH_MBYTES" check:"positive" help:"Largest target body, in MiB, enforced while reading."`
		ClientCache                    struct {
			MaxSize             int `koanf:"maxSize" flag:"max_cache_size" env:"MAX_CLIENT_CACHE_SIZE" group:"cache" check:"positive" compat:"one pooled HTTP client serves every target" help:"Most HTTP clients cached."`
			MaxAgeMins          int `koanf:"maxAgeMins" flag:"max_cache_age_mins" env:"MAX_CLIENT_CACHE_AGE_MINS" group:"cache" check:"positive" compat:"one pooled HTTP client serves every target" help:"Longest a cached client is kept, in minutes."`
			MaxIdleMins         int `koanf:"maxIdleMins" flag:"max_cache_idle_mins" env:"MAX_CLIENT_CACHE_IDLE_MINS" group:"cache" check:"positive" compat:"one pooled HTTP client serves every target" help:"Idle minutes before a cached client is dropped."`
			CleanupIntervalMins int `koanf:"cleanupIntervalMins" flag:"cache_cleanup_interval_mins" env:"CLIENT_CACHE_CLEANUP_INTERVAL_MINS" group:"cache" check:"positive" compat:"one pooled HTTP client serves every target" help:"Minutes between cache cleanups."`
		} `koanf:"clientCache"`
	} `koanf:"http"`

	Admin   Admin    `koanf:"admin"`
	Metrics Metrics  `koanf:"metrics"`
	TLS     AgentTLS `koanf:"tls"`

	Discovery struct {
		Enabled bool `koanf:"enabled" help:"Read more paths from a watched file."`
		File    struct {
			Path string `koanf:"path" path:"true" help:"File holding a list of paths ({name, path, url, labels}), polled for changes."`
		} `koanf:"file"`
		ReconcileIntervalSecs int `koanf:"reconcileIntervalSecs" check:"positive" help:"Seconds between polls of the discovery file."`
	} `koanf:"discovery"`

	PathConfigs []PathConfig `koanf:"pathConfigs" help:"Paths this agent serves: a list of {name, path, url, labels}. Config file only."`
	Filters     []Filter     `koanf:"filters" help:"Per-path metric filters: a list of {path, metricNameAllow, metricNameDeny} of fully anchored regexes. Config file only."`

	GRPC struct {
		KeepAliveTimeSecs     int  `koanf:"keepAliveTimeSecs" flag:"keepalive_time_secs" env:"KEEPALIVE_TIME_SECS" group:"grpc" check:"positive_or_unset" help:"Seconds the proxy connection may be silent before the agent sends an HTTP/2 PING (-1: default)."`
		KeepAliveTimeoutSecs  int  `koanf:"keepAliveTimeoutSecs" flag:"keepalive_timeout_secs" env:"KEEPALIVE_TIMEOUT_SECS" group:"grpc" check:"positive_or_unset" help:"Seconds to wait for a PING's answer before the connection is closed (-1: default)."`
		KeepAliveWithoutCalls bool `koanf:"keepAliveWithoutCalls" flag:"keepalive_without_calls" env:"KEEPALIVE_WITHOUT_CALLS" group:"grpc" compat:"the session stream is always open, so PINGs always have a call" help:"Send PINGs without active streams."`
		UnaryDeadlineSecs     int  `koanf:"unaryDeadlineSecs" flag:"unary_deadline_secs" env:"UNARY_DEADLINE_SECS" group:"grpc" check:"positive" compat:"the agent makes no unary calls; everything runs on its session stream" help:"Deadline of unary calls."`
	} `koanf:"grpc"`

	Internal struct {
		CioTimeoutSecs                    int    `koanf:"cioTimeoutSecs" check:"positive" help:"Deprecated name of http.clientTimeoutSecs, used when that is not set."`
		ReconnectPauseSecs                int    `koanf:"reconnectPauseSecs" check:"positive" help:"Longest pause between reconnect rounds; pauses start at 0.5s and double, with jitter, up to this."`
		HeartbeatEnabled                  bool   `koanf:"heartbeatEnabled" compat:"heartbeats are part of the session protocol" help:"Send heartbeats when idle."`
		HeartbeatCheckPauseMillis         int    `koanf:"heartbeatCheckPauseMillis" check:"positive" compat:"heartbeats are timer-driven" help:"Pause between inactivity checks."`
		HeartbeatMaxInactivitySecs        int    `koanf:"heartbeatMaxInactivitySecs" check:"positive" help:"Seconds of inactivity after which the agent sends a heartbeat (until the proxy asks for another interval)."`
		ScrapeRequestBacklogUnhealthySize int    `koanf:"scrapeRequestBacklogUnhealthySize" check:"positive" compat:"scrape requests are never queued on the agent beyond its in-flight limit" help:"Backlog above which /healthcheck reports unhealthy."`
		RejectedPathRetrySecs             int    `koanf:"rejectedPathRetrySecs" check:"positive" compat:"a refused path stays refused until the agent reconnects" help:"Seconds between retries of a refused path."`
		ShutdownGracePeriodSecs           int    `koanf:"shutdownGracePeriodSecs" flag:"shutdown_grace_secs" env:"SHUTDOWN_GRACE_PERIOD_SECS" check:"positive" new:"true" help:"On SIGTERM, seconds target fetches in flight get to finish before the agent unregisters and stops."`
		Zipkin                            Zipkin `koanf:"zipkin"`
	} `koanf:"internal"`
}

// AgentTLS is the agent's side of the TLS configuration.
type AgentTLS struct {
	TLS               `koanf:",squash"`
	OverrideAuthority string `koanf:"overrideAuthority" flag:"override" env:"OVERRIDE_AUTHORITY" help:"Server name the proxy's certificate is verified against, instead of the proxy's hostname."`
}

// PathConfig is one entry of agent.pathConfigs.
type PathConfig struct {
	Name   string            `koanf:"name" help:"Name of the target, for logs."`
	Path   string            `koanf:"path" help:"The single URL segment Prometheus scrapes on the proxy."`
	URL    string            `koanf:"url" help:"Target URL the agent fetches, http or https."`
	Labels map[string]string `koanf:"labels" help:"Service discovery labels: a map, or a JSON object in a string."`
}

// Filter is one entry of agent.filters.
type Filter struct {
	Path            string   `koanf:"path" help:"Path the filter applies to."`
	MetricNameAllow []string `koanf:"metricNameAllow" help:"Fully anchored regexes of metric families to keep; empty keeps all."`
	MetricNameDeny  []string `koanf:"metricNameDeny" help:"Fully anchored regexes of metric families to drop; wins over allow."`
}

// DefaultAgent returns the agent's defaults: the Kotlin agent's unless
// docs/migrating-from-kotlin.md says otherwise.
func DefaultAgent() Agent {
	var a Agent
	a.ChunkContentSizeKbs = 32
	a.MinGzipSizeBytes = 512
	a.ScrapeTimeoutSecs = 15
	a.LogLevel = "info"
	a.LogFormat = "text"
	a.Proxy.Hostname = "localhost"
	a.Proxy.Port = 50051
	a.HTTP.MaxConcurrentClients = 4
	a.HTTP.ClientTimeoutSecs = 90
	a.HTTP.MaxContentLengthMBytes = 10
	a.HTTP.ClientCache.MaxSize = 100
	a.HTTP.ClientCache.MaxAgeMins = 30
	a.HTTP.ClientCache.MaxIdleMins = 10
	a.HTTP.ClientCache.CleanupIntervalMins = 5
	a.Admin = defaultAdmin(8093)
	a.Metrics = defaultMetrics(8083)
	a.Discovery.ReconcileIntervalSecs = 30
	a.GRPC.KeepAliveTimeSecs = 20 // longer than the 15 s heartbeat: see transport.DefaultKeepalive
	a.GRPC.KeepAliveTimeoutSecs = 5
	a.GRPC.UnaryDeadlineSecs = 30
	a.Internal.CioTimeoutSecs = 90
	a.Internal.ReconnectPauseSecs = 30
	a.Internal.HeartbeatEnabled = true
	a.Internal.HeartbeatCheckPauseMillis = 500
	a.Internal.HeartbeatMaxInactivitySecs = 15 // the proxy's; see server.DefaultOptions
	a.Internal.ScrapeRequestBacklogUnhealthySize = 25
	a.Internal.RejectedPathRetrySecs = 10
	a.Internal.ShutdownGracePeriodSecs = 10
	a.Internal.Zipkin = defaultZipkin("prometheus-agent")
	return a
}
