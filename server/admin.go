package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/promproxy/promproxy/internal/adminhttp"
)

// adminHandler serves the admin listener: the same routes as the agent's,
// from the shared admin package, with the proxy's own health checks. It is
// a separate mux on a separate port so that none of these routes is
// reachable from the scrape or agent ports.
func (p *Proxy) adminHandler() http.Handler {
	return adminhttp.AdminHandler(adminhttp.AdminOptions{Debug: p.opts.Debug, Health: p.health})
}

// health runs the proxy's checks for /healthcheck.
func (p *Proxy) health() adminhttp.Health {
	h := adminhttp.Health{
		Healthy: true,
		Checks:  map[string]string{"listeners": "ok"},
		Details: map[string]any{
			"agents":         p.reg.agentCount(),
			"paths":          p.reg.pathCount(),
			"uptime_seconds": int64(time.Since(p.started).Seconds()),
		},
	}
	if p.stopping.Load() {
		h.Healthy = false
		h.Checks["listeners"] = "shutting down"
	}
	if limit := p.opts.UnhealthyInFlightScrapes; limit > 0 {
		n := int(gaugeValue(p.metrics.inFlight))
		h.Checks["scrapes_in_flight"] = "ok"
		if n > limit {
			h.Healthy = false
			h.Checks["scrapes_in_flight"] = fmt.Sprintf("%d in flight, more than %d", n, limit)
		}
	}
	return h
}

func metricsHandler(g prometheus.Gatherer, path string) http.Handler {
	if path == "" {
		path = "metrics"
	}
	return adminhttp.MetricsHandler(g, path)
}

// gaugeValue reads a gauge the proxy already maintains for /metrics, so
// that the health check and the metric can never disagree.
func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}
