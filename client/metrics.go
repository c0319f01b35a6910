package client

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics holds one Agent's collectors, named as the Kotlin agent names
// them so existing dashboards keep working.
type metrics struct {
	scrapeRequests *prometheus.CounterVec
	scrapeResults  *prometheus.CounterVec
	connects       *prometheus.CounterVec
	latency        prometheus.Observer
	backlog        prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, launchID, agentName string) *metrics {
	f := promauto.With(reg)
	l := prometheus.Labels{"launch_id": launchID}
	start := float64(time.Now().UnixNano()) / 1e9
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agent_start_time_seconds", Help: "When the agent started, in seconds since the Unix epoch.", ConstLabels: l,
	}, func() float64 { return start })
	return &metrics{
		scrapeRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "agent_scrape_request_count_total", Help: "Scrape requests processed, by outcome.", ConstLabels: l,
		}, []string{"type"}),
		scrapeResults: f.NewCounterVec(prometheus.CounterOpts{
			Name: "agent_scrape_result_count_total", Help: "Scrape results sent, by kind (non-gzipped, gzipped, chunked).", ConstLabels: l,
		}, []string{"type"}),
		connects: f.NewCounterVec(prometheus.CounterOpts{
			Name: "agent_connect_count_total", Help: "Connection attempts to a proxy, by result.", ConstLabels: l,
		}, []string{"type"}),
		latency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agent_scrape_request_latency_seconds", Help: "Time to fetch a target.", ConstLabels: l,
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"agent_name"}).WithLabelValues(agentName),
		backlog: f.NewGauge(prometheus.GaugeOpts{
			Name: "agent_scrape_backlog_size", Help: "Scrape requests being worked on.", ConstLabels: l,
		}),
	}
}
