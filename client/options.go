package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/internal/backoff"
	"github.com/promproxy/promproxy/internal/pathspec"
	"github.com/promproxy/promproxy/internal/redact"
	"github.com/promproxy/promproxy/internal/transport"
)

// PathConfig maps one proxy path to one target URL.
type PathConfig struct {
	// Name describes the target, for logs.
	Name string
	// Path is the single URL segment Prometheus scrapes on the proxy.
	Path string
	// URL is the target's metrics URL, http or https.
	URL string
	// Labels are the path's labels for the proxy's service discovery.
	Labels map[string]string
}

// Options configures an Agent. Start from DefaultOptions.
type Options struct {
	// ProxyURLs lists the proxies to connect to, in order of preference:
	// "host:port", "http://host:port" (h2c) or "https://host:port" (TLS).
	// A failed connect moves to the next; a working session that drops
	// starts again from the first, so a recovered primary is picked up.
	ProxyURLs []string
	// AgentName names the agent on the proxy (--name).
	AgentName string
	// Consolidated lets this agent share paths with other consolidated
	// agents instead of displacing them.
	Consolidated bool
	// Labels are attached to all of this agent's paths in service discovery.
	Labels map[string]string
	// Paths are the paths this agent serves.
	Paths []PathConfig

	// MaxConcurrentClients bounds the concurrent fetches of each path's
	// target (maxConcurrentClients). The bound is per path so that one slow
	// target can never take the slots of the agent's other paths.
	MaxConcurrentClients int
	// MaxInFlightScrapes bounds the scrapes one agent works on at once,
	// across all paths; requests beyond it are answered "busy" at once.
	MaxInFlightScrapes int
	// ScrapeTimeout caps one target fetch (scrapeTimeoutSecs). The proxy's
	// deadline, derived from Prometheus' scrape timeout, wins when shorter.
	ScrapeTimeout time.Duration
	// ScrapeMaxRetries retries a fetch that failed before the target
	// answered, while time remains (scrapeMaxRetries).
	ScrapeMaxRetries int
	// ClientTimeout caps every HTTP request to a target
	// (internal.cioTimeoutSecs / --client_timeout_secs).
	ClientTimeout time.Duration
	// MaxContentLength limits a target's body, enforced while reading
	// (maxContentLengthMBytes).
	MaxContentLength int64
	// MinGzipSize is the smallest body the agent compresses before sending
	// (minGzipSizeBytes). Bodies the target already compressed are passed
	// through untouched.
	MinGzipSize int
	// GzipDisabled sends bodies uncompressed.
	GzipDisabled bool
	// ChunkSize is the size of one body frame (chunkContentSizeKbs).
	ChunkSize int
	// HeartbeatInterval is used until the proxy says otherwise.
	HeartbeatInterval time.Duration
	// Backoff paces reconnects after every proxy in ProxyURLs failed.
	Backoff backoff.Policy
	// Keepalive controls HTTP/2 PINGs on the proxy connection.
	Keepalive transport.Keepalive
	// TLSConfig secures the proxy connection; nil with an http:// or bare
	// host:port URL means h2c.
	TLSConfig *tls.Config
	// TargetTLSConfig verifies https targets; nil uses the system roots.
	TargetTLSConfig *tls.Config

	// TLSCertFile and TLSKeyFile are the agent's client certificate for
	// mutual TLS with the proxy (--cert, --key). They are reloaded when
	// they change.
	TLSCertFile string
	TLSKeyFile  string
	// TLSTrustFile holds the CAs that may sign the proxy's certificate
	// (--trust); when TLS is on without it, the system's CAs are trusted.
	// It is reloaded when it changes. Any TLS setting turns TLS on and makes
	// bare proxy addresses https.
	TLSTrustFile string
	// TLSOverrideAuthority is the name the proxy's certificate must carry
	// instead of the host name in ProxyURLs; it is also sent as the
	// request authority (--override).
	TLSOverrideAuthority string
	// AgentToken is sent to the proxy in the agent-token header
	// (--agent_token, AGENT_TOKEN). It is never logged.
	AgentToken string
	// TargetTrustFile adds the CAs of a PEM file to the system's for
	// verifying https targets (--https_truststore; a Java keystore must be
	// converted to PEM first).
	TargetTrustFile string
	// TargetInsecureSkipVerify turns off verification of https targets
	// (--trust_all_x509). For development only; a warning is logged at
	// startup.
	TargetInsecureSkipVerify bool
	// Version is sent to the proxy and used in the User-Agent.
	Version string

	// Logger receives the agent's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the agent's metrics. Nil disables them.
	Registerer prometheus.Registerer
}

// DefaultOptions returns the documented defaults.
func DefaultOptions() Options {
	return Options{
		ProxyURLs:            []string{"localhost:50051"},
		MaxConcurrentClients: 4,
		MaxInFlightScrapes:   512,
		ScrapeTimeout:        15 * time.Second,
		ClientTimeout:        90 * time.Second,
		MaxContentLength:     10 << 20,
		MinGzipSize:          512,
		ChunkSize:            32 << 10,
		HeartbeatInterval:    15 * time.Second,
		Backoff:              backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.5},
		Keepalive:            transport.DefaultKeepalive,
		Version:              "dev",
	}
}

// target is a validated path configuration.
type target struct {
	PathConfig
	url *url.URL
	sem chan struct{}
}

func (o *Options) validate() (map[string]*target, error) {
	var errs []error
	bad := func(field string, v any, want string) {
		errs = append(errs, fmt.Errorf("client: option %s = %v: %s", field, v, want))
	}
	if len(o.ProxyURLs) == 0 {
		bad("ProxyURLs", "[]", "at least one proxy address is required")
	}
	for i, u := range o.ProxyURLs {
		if _, err := proxyBaseURL(u, o.proxyTLSEnabled()); err != nil {
			bad(fmt.Sprintf("ProxyURLs[%d]", i), fmt.Sprintf("%q", redact.URL(u)), redact.Error(err))
		}
	}
	if o.MaxConcurrentClients < 1 {
		bad("MaxConcurrentClients", o.MaxConcurrentClients, "must be at least 1")
	}
	if o.MaxInFlightScrapes < 1 {
		bad("MaxInFlightScrapes", o.MaxInFlightScrapes, "must be at least 1")
	}
	for name, d := range map[string]time.Duration{"ScrapeTimeout": o.ScrapeTimeout, "ClientTimeout": o.ClientTimeout, "HeartbeatInterval": o.HeartbeatInterval} {
		if d <= 0 {
			bad(name, d, "must be greater than 0")
		}
	}
	if o.ScrapeMaxRetries < 0 {
		bad("ScrapeMaxRetries", o.ScrapeMaxRetries, "must not be negative")
	}
	if o.MaxContentLength <= 0 {
		bad("MaxContentLength", o.MaxContentLength, "must be greater than 0")
	}
	if o.MinGzipSize < 0 {
		bad("MinGzipSize", o.MinGzipSize, "must not be negative")
	}
	if o.ChunkSize < 1024 || o.ChunkSize > 4<<20 {
		bad("ChunkSize", o.ChunkSize, "must be between 1024 and 4194304 bytes")
	}
	if o.Backoff.Initial <= 0 || o.Backoff.Max < o.Backoff.Initial {
		bad("Backoff", fmt.Sprintf("%+v", o.Backoff), "Initial must be > 0 and Max >= Initial")
	}
	targets := make(map[string]*target, len(o.Paths))
	for i, p := range o.Paths {
		field := fmt.Sprintf("Paths[%d]", i)
		if err := pathspec.Validate(p.Path); err != nil {
			bad(field+".Path", fmt.Sprintf("%q", p.Path), err.Error())
			continue
		}
		if _, dup := targets[p.Path]; dup {
			bad(field+".Path", fmt.Sprintf("%q", p.Path), "path is listed twice")
			continue
		}
		u, err := url.Parse(p.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(field+".URL", fmt.Sprintf("%q", redact.URL(p.URL)), "must be an absolute http:// or https:// URL")
			continue
		}
		targets[p.Path] = &target{PathConfig: p, url: u, sem: make(chan struct{}, max(o.MaxConcurrentClients, 1))}
	}
	errs = append(errs, o.validateSecurity()...)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return targets, errors.Join(errs...)
}

// proxyBaseURL turns a proxy address into the base URL of its service.
func proxyBaseURL(addr string, tlsOn bool) (string, error) {
	if addr == "" {
		return "", errors.New("empty proxy address")
	}
	if !strings.Contains(addr, "://") {
		scheme := "http"
		if tlsOn {
			scheme = "https"
		}
		addr = scheme + "://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("not a valid address: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("no host")
	}
	if u.Port() == "" {
		u.Host += ":50051"
	}
	if u.Scheme == "https" && !tlsOn {
		return "", errors.New("https:// needs TLS settings (--cert/--key/--trust)")
	}
	return u.Scheme + "://" + u.Host, nil
}
