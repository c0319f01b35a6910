package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// target is the sample application the agent scrapes: an HTTP server with
// a few metrics that change while the demo runs, as a real service's would.
type target struct {
	srv *http.Server
	ln  net.Listener
}

// startTarget serves /metrics on a loopback port until ctx ends.
func startTarget(ctx context.Context) (*target, error) {
	// Only application metrics: the Go runtime's would fill the screen.
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_http_requests_total",
		Help: "HTTP requests served by the shop, by method and status code.",
	}, []string{"method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "shop_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"handler"})
	queue := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shop_order_queue_depth",
		Help: "Orders waiting to be shipped.",
	})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "shop_build_info",
		Help: "Build of the shop service; the value is always 1.",
	}, []string{"version", "revision"})
	reg.MustRegister(requests, latency, queue, info)
	info.WithLabelValues("2.7.1", "4f1c2e9").Set(1)

	// Simulated traffic, so that consecutive scrapes differ.
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for range 1 + rand.IntN(20) {
				code := "200"
				if rand.IntN(50) == 0 {
					code = "500"
				}
				method := []string{"GET", "GET", "GET", "POST"}[rand.IntN(4)]
				requests.WithLabelValues(method, code).Inc()
				handler := []string{"/cart", "/checkout", "/products"}[rand.IntN(3)]
				latency.WithLabelValues(handler).Observe(rand.ExpFloat64() / 40)
			}
			queue.Set(float64(rand.IntN(40)))
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t := &target{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err) // cannot happen: the listener is ours and open
		}
	}()
	return t, nil
}

// url is the target's metrics URL.
func (t *target) url() string { return "http://" + t.ln.Addr().String() + "/metrics" }

// close stops the server.
func (t *target) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.srv.Shutdown(ctx)
}
