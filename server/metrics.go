package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of a scrape, the values of proxy_scrape_requests_total{type}.
// They are the Kotlin proxy's label values so that existing dashboards and
// alert rules keep working. Where its docs and code disagree, the docs'
// proxy_stopped is used rather than proxy_not_running.
const (
	outcomeSuccess           = "success"
	outcomeTimedOut          = "timed_out"
	outcomeUpstreamTimedOut  = "upstream_timed_out"
	outcomeNoAgents          = "no_agents"
	outcomeInvalidPath       = "invalid_path"
	outcomeMissingPath       = "missing_path"
	outcomeAgentDisconnected = "agent_disconnected"
	outcomeAgentBacklogFull  = "agent_backlog_full"
	outcomeClientCancelled   = "client_cancelled"
	outcomePathNotFound      = "path_not_found"
	outcomeUpstreamError     = "upstream_error"
	outcomeInvalidResponse   = "invalid_response"
	outcomeContentTooLarge   = "content_too_large"
	outcomePayloadTooLarge   = "payload_too_large"
	outcomeInvalidGzip       = "invalid_gzip"
	outcomeProxyStopped      = "proxy_stopped"
)

// metrics holds one Proxy's collectors. Counter names carry the _total
// suffix themselves so that the text and OpenMetrics formats expose the
// same names.
type metrics struct {
	scrapeRequests     *prometheus.CounterVec
	connects           prometheus.Counter
	evictions          prometheus.Counter
	heartbeats         prometheus.Counter
	chunkValidation    *prometheus.CounterVec
	transfersAbandoned prometheus.Counter
	displacements      prometheus.Counter
	protocolViolations *prometheus.CounterVec
	scrapeLatency      *prometheus.HistogramVec
	responseBytes      *prometheus.HistogramVec
	inFlight           prometheus.Gauge
	chunkedTransfers   prometheus.Gauge
	cumulativeBacklog  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, r *registry) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		scrapeRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_scrape_requests_total",
			Help: "Scrape requests by outcome.",
		}, []string{"type"}),
		connects: f.NewCounter(prometheus.CounterOpts{
			Name: "proxy_connect_count_total",
			Help: "Agent sessions registered.",
		}),
		evictions: f.NewCounter(prometheus.CounterOpts{
			Name: "proxy_eviction_count_total",
			Help: "Agents evicted for inactivity.",
		}),
		heartbeats: f.NewCounter(prometheus.CounterOpts{
			Name: "proxy_heartbeat_count_total",
			Help: "Heartbeats received from agents.",
		}),
		chunkValidation: f.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_chunk_validation_failures_total",
			Help: "Scrape bodies that failed an integrity check, by stage (chunk or summary).",
		}, []string{"stage"}),
		transfersAbandoned: f.NewCounter(prometheus.CounterOpts{
			Name: "proxy_chunked_transfers_abandoned_total",
			Help: "Streamed scrape bodies abandoned before their end.",
		}),
		displacements: f.NewCounter(prometheus.CounterOpts{
			Name: "proxy_agent_displacement_total",
			Help: "Path registrations that displaced another agent.",
		}),
		protocolViolations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "proxy_agent_protocol_violations_total",
			Help: "Agent messages refused because they broke the protocol, by kind.",
		}, []string{"kind"}),
		scrapeLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "proxy_scrape_request_latency_seconds",
			Help:    "End-to-end scrape latency seen by the proxy.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30, 60, 90},
		}, []string{"path", "outcome"}),
		responseBytes: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "proxy_scrape_response_bytes",
			Help:    "Bytes written to Prometheus per successful scrape, by encoding.",
			Buckets: []float64{1 << 10, 10 << 10, 100 << 10, 500 << 10, 1 << 20, 5 << 20, 10 << 20},
		}, []string{"path", "encoding"}),
		inFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "proxy_scrape_map_size",
			Help: "Scrapes in flight.",
		}),
		chunkedTransfers: f.NewGauge(prometheus.GaugeOpts{
			Name: "proxy_chunk_context_map_size",
			Help: "Scrape bodies being streamed in more than one frame.",
		}),
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proxy_cumulative_agent_backlog_size",
		Help: "Messages queued for agents but not yet sent, across all agents.",
	}, func() float64 { return float64(r.backlog()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proxy_agent_map_size",
		Help: "Connected agents.",
	}, func() float64 { return float64(r.agentCount()) })
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proxy_path_map_size",
		Help: "Registered paths.",
	}, func() float64 { return float64(r.pathCount()) })
	start := float64(time.Now().UnixNano()) / 1e9
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "proxy_start_time_seconds",
		Help: "When the proxy started, in seconds since the Unix epoch.",
	}, func() float64 { return start })
	for _, o := range []string{outcomeSuccess, outcomeTimedOut, outcomeInvalidPath, outcomeAgentDisconnected} {
		m.scrapeRequests.WithLabelValues(o)
	}
	return m
}

// forgetPath drops a retired path's series so it stops appearing on
// /metrics.
func (m *metrics) forgetPath(path string) {
	m.scrapeLatency.DeletePartialMatch(prometheus.Labels{"path": path})
	m.responseBytes.DeletePartialMatch(prometheus.Labels{"path": path})
}
