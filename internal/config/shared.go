package config

// Admin is the admin listener of either program: /ping, /healthcheck,
// /version and, with debugEnabled, /threaddump and /debug/pprof/.
type Admin struct {
	Enabled         bool   `koanf:"enabled" flag:"admin" short:"r" env:"ADMIN_ENABLED" help:"Serve the admin listener."`
	Port            int    `koanf:"port" flag:"admin_port" short:"i" env:"ADMIN_PORT" check:"listenport" help:"Port of the admin listener."`
	PingPath        string `koanf:"pingPath" check:"segment" compat:"the route is always /ping" help:"Path of the ping route."`
	VersionPath     string `koanf:"versionPath" check:"segment" compat:"the route is always /version" help:"Path of the version route."`
	HealthCheckPath string `koanf:"healthCheckPath" check:"segment" compat:"the route is always /healthcheck" help:"Path of the health check route."`
	ThreadDumpPath  string `koanf:"threadDumpPath" check:"segment" compat:"the route is always /threaddump" help:"Path of the goroutine dump route."`
	DebugEnabled    bool   `koanf:"debugEnabled" flag:"debug" short:"b" env:"DEBUG_ENABLED" help:"Also serve /threaddump (goroutine dump) and /debug/pprof/ on the admin listener."`
}

func defaultAdmin(port int) Admin {
	return Admin{Port: port, PingPath: "ping", VersionPath: "version", HealthCheckPath: "healthcheck", ThreadDumpPath: "threaddump"}
}

// Metrics is the metrics listener of either program.
type Metrics struct {
	Enabled                        bool   `koanf:"enabled" flag:"metrics" short:"e" env:"METRICS_ENABLED" help:"Serve the metrics listener."`
	Port                           int    `koanf:"port" flag:"metrics_port" short:"m" env:"METRICS_PORT" check:"listenport" help:"Port of the metrics listener."`
	Path                           string `koanf:"path" check:"segment" help:"Path of the metrics endpoint."`
	StandardExportsEnabled         bool   `koanf:"standardExportsEnabled" help:"Also export the Go runtime and process collectors (go_*, process_*)."`
	MemoryPoolsExportsEnabled      bool   `koanf:"memoryPoolsExportsEnabled" compat:"JVM-only; go_memstats_* come with standardExportsEnabled" help:"JVM memory pool metrics."`
	GarbageCollectorExportsEnabled bool   `koanf:"garbageCollectorExportsEnabled" compat:"JVM-only; go_gc_* come with standardExportsEnabled" help:"JVM garbage collector metrics."`
	ThreadExportsEnabled           bool   `koanf:"threadExportsEnabled" compat:"JVM-only; go_goroutines comes with standardExportsEnabled" help:"JVM thread metrics."`
	ClassLoadingExportsEnabled     bool   `koanf:"classLoadingExportsEnabled" compat:"JVM-only" help:"JVM class loading metrics."`
	VersionInfoExportsEnabled      bool   `koanf:"versionInfoExportsEnabled" help:"Also export go_build_info."`
	GRPC                           struct {
		MetricsEnabled     bool `koanf:"metricsEnabled" compat:"not implemented in the Kotlin proxy either" help:"gRPC metrics."`
		AllMetricsReported bool `koanf:"allMetricsReported" compat:"not implemented in the Kotlin proxy either" help:"All gRPC metrics rather than the cheap ones."`
	} `koanf:"grpc"`
}

func defaultMetrics(port int) Metrics {
	return Metrics{Port: port, Path: "metrics"}
}

// TLS is the TLS configuration of the agent channel. Relative paths set in
// a config file are resolved against the file's directory.
type TLS struct {
	CertChainFilePath           string `koanf:"certChainFilePath" flag:"cert" short:"t" env:"CERT_CHAIN_FILE_PATH" path:"true" help:"PEM certificate chain of this side."`
	PrivateKeyFilePath          string `koanf:"privateKeyFilePath" flag:"key" short:"k" env:"PRIVATE_KEY_FILE_PATH" path:"true" help:"PEM private key of this side."`
	TrustCertCollectionFilePath string `koanf:"trustCertCollectionFilePath" flag:"trust" short:"s" env:"TRUST_CERT_COLLECTION_FILE_PATH" path:"true" help:"PEM CA certificates the other side's certificate must chain to (on the proxy: requires agent certificates, mutual TLS)."`
}

// Zipkin is the Kotlin programs' tracing section, accepted so that their
// config files load; tracing is not implemented.
type Zipkin struct {
	Enabled              bool   `koanf:"enabled" compat:"Zipkin tracing is not implemented" help:"Send Zipkin traces."`
	Hostname             string `koanf:"hostname" compat:"Zipkin tracing is not implemented" help:"Zipkin host."`
	Port                 int    `koanf:"port" check:"port" compat:"Zipkin tracing is not implemented" help:"Zipkin port."`
	Path                 string `koanf:"path" compat:"Zipkin tracing is not implemented" help:"Zipkin path."`
	ServiceName          string `koanf:"serviceName" compat:"Zipkin tracing is not implemented" help:"Zipkin service name."`
	GrpcReportingEnabled bool   `koanf:"grpcReportingEnabled" compat:"Zipkin tracing is not implemented" help:"Report gRPC spans."`
}

func defaultZipkin(service string) Zipkin {
	return Zipkin{Hostname: "localhost", Port: 9411, Path: "api/v2/spans", ServiceName: service}
}
