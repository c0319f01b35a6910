package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"runtime"
	rpprof "runtime/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/promproxy/promproxy/internal/version"
)

// adminHandler serves the admin listener. It is a separate mux on a
// separate port so that none of these routes is reachable from the scrape
// or agent ports.
func (p *Proxy) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("pong"))
	})
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) {
		v := version.Get()
		writeJSON(w, http.StatusOK, map[string]string{
			"version": v.Version, "commit": v.Commit, "date": v.Date,
			"go_version": runtime.Version(),
		})
	})
	mux.HandleFunc("GET /healthcheck", p.handleHealth)
	if p.opts.Debug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /threaddump", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_ = rpprof.Lookup("goroutine").WriteTo(w, 2)
		})
	}
	return mux
}

// health is the /healthcheck document.
type health struct {
	Healthy   bool              `json:"healthy"`
	Checks    map[string]string `json:"checks"`
	Agents    int               `json:"agents"`
	Paths     int               `json:"paths"`
	UptimeSec int64             `json:"uptime_seconds"`
}

func (p *Proxy) handleHealth(w http.ResponseWriter, _ *http.Request) {
	h := health{
		Healthy:   true,
		Checks:    map[string]string{"listeners": "ok"},
		Agents:    p.reg.agentCount(),
		Paths:     p.reg.pathCount(),
		UptimeSec: int64(time.Since(p.started).Seconds()),
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
	status := http.StatusOK
	if !h.Healthy {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func metricsHandler(g prometheus.Gatherer, path string) http.Handler {
	if path == "" {
		path = "metrics"
	}
	mux := http.NewServeMux()
	mux.Handle("GET /"+strings.TrimPrefix(path, "/"), promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	return mux
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
