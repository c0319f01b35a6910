package e2e

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Headers Prometheus sends, with and without gzip.
var (
	promText = map[string]string{
		"Accept":                              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
		"X-Prometheus-Scrape-Timeout-Seconds": "30",
	}
	promProtobuf = map[string]string{
		"Accept":                              "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3",
		"X-Prometheus-Scrape-Timeout-Seconds": "30",
	}
)

// withGzip returns hdr plus Accept-Encoding: gzip when gz is set.
func withGzip(hdr map[string]string, gz bool) map[string]string {
	out := map[string]string{}
	for k, v := range hdr {
		out[k] = v
	}
	if gz {
		out["Accept-Encoding"] = "gzip"
	}
	return out
}

func TestProcessBodySizes(t *testing.T) {
	t.Parallel()
	sizes := []struct {
		name string
		size int
		// chunked serves the body without Content-Length, as most exporters do.
		chunked bool
	}{
		{name: "empty", size: 0},
		{name: "10KB", size: 10 << 10},
		{name: "1MB", size: 1 << 20, chunked: true},
		{name: "30MB", size: 30 << 20, chunked: true},
	}
	bodies := map[string][]byte{}
	var paths []pathConfig
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		body, ok := bodies[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		}
		for len(body) > 0 {
			n := min(len(body), 64<<10)
			_, _ = w.Write(body[:n])
			body = body[n:]
		}
	})
	for _, s := range sizes {
		bodies[s.name] = exposition(s.size)
		u := target.URL + "/" + s.name
		if s.chunked {
			u += "?chunked=1"
		}
		paths = append(paths, pathConfig{name: s.name, path: "size_" + s.name, url: u})
	}
	tun := startTunnel(t, paths, "--max_content_length_mbytes", "64")
	c := newHTTPClient(t)

	for i, s := range sizes {
		for _, gz := range []bool{true, false} {
			name := s.name + "/gzip=" + strconv.FormatBool(gz)
			hdr := withGzip(promText, gz)
			direct := mustGet(t, c, paths[i].url, hdr)
			if !bytes.Equal(direct.body, bodies[s.name]) {
				t.Fatalf("%s: the target itself served %d bytes, want %d", name, len(direct.body), s.size)
			}
			proxied, err := get(c, tun.proxy.url(paths[i].path), hdr)
			if !gz && s.size > 10<<20 {
				// Decompressing for a client without gzip is capped by the
				// proxy's maxUnzippedContentSizeMBytes (10): the scrape must
				// fail, either with 413 or as a broken transfer.
				if err == nil && proxied.status != http.StatusRequestEntityTooLarge {
					t.Errorf("%s: status %d with %d bytes, want 413 or a broken transfer", name, proxied.status, len(proxied.body))
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			sameAnswer(t, name, direct, proxied)
		}
	}
}

// staticRegistry is a registry whose exposition never changes, so a direct
// and a proxied scrape of it can be compared byte for byte.
func staticRegistry(t testing.TB) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests served."}, []string{"method", "code"})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds", Help: "Request latency.", Buckets: prometheus.DefBuckets}, []string{"handler"})
	temp := prometheus.NewGauge(prometheus.GaugeOpts{Name: "room_temperature_celsius", Help: "Temperature."})
	reg.MustRegister(reqs, lat, temp)
	for i, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		for j, code := range []string{"200", "404", "500"} {
			reqs.WithLabelValues(m, code).Add(float64(1000*i + 37*j + 1))
		}
	}
	for i := range 200 {
		lat.WithLabelValues("/api/v" + strconv.Itoa(i%3)).Observe(float64(i%17) / 100)
	}
	temp.Set(21.5)
	return reg
}

// selfGzipTarget serves body gzip-compressed to clients that accept it,
// as many exporters do. The compressed bytes are fixed, so a proxy that
// passes them through unchanged gives exactly the target's bytes.
func selfGzipTarget(body []byte) (http.HandlerFunc, []byte) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, _ = zw.Write(body)
	_ = zw.Close()
	gz := zb.Bytes()
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			_, _ = w.Write(gz)
			return
		}
		_, _ = w.Write(body)
	}, gz
}

func TestProcessFormats(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(staticRegistry(t), promhttp.HandlerOpts{}))
	small, smallGz := selfGzipTarget(exposition(3 << 10))
	large, largeGz := selfGzipTarget(exposition(2 << 20))
	mux.Handle("/gz-small", small)
	mux.Handle("/gz-large", large)
	mux.HandleFunc("/federate", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("path=" + r.URL.Path + "\nraw_query=" + r.URL.RawQuery + "\nmatch=" + strings.Join(r.URL.Query()["match[]"], "|") + "\n"))
	})
	target := newTarget(t, mux.ServeHTTP)
	tun := startTunnel(t, []pathConfig{
		{name: "promhttp", path: "app", url: target.URL + "/metrics"},
		{name: "gzip small", path: "gz_small", url: target.URL + "/gz-small"},
		{name: "gzip large", path: "gz_large", url: target.URL + "/gz-large"},
		{name: "federation", path: "federate", url: target.URL + "/federate"},
	})
	c := newHTTPClient(t)

	t.Run("protobuf", func(t *testing.T) {
		for _, gz := range []bool{true, false} {
			hdr := withGzip(promProtobuf, gz)
			direct := mustGet(t, c, target.URL+"/metrics", hdr)
			proxied := mustGet(t, c, tun.proxy.url("app"), hdr)
			if ct := direct.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/vnd.google.protobuf") {
				t.Fatalf("the target answered Content-Type %q; the test needs a protobuf exposition", ct)
			}
			sameAnswer(t, "protobuf gzip="+strconv.FormatBool(gz), direct, proxied)
		}
	})

	t.Run("target gzips itself", func(t *testing.T) {
		cases := []struct {
			name, path, url string
			gz              []byte
		}{
			{name: "single frame", path: "gz_small", url: target.URL + "/gz-small", gz: smallGz},
			{name: "many frames", path: "gz_large", url: target.URL + "/gz-large", gz: largeGz},
		}
		for _, tc := range cases {
			for _, acceptGzip := range []bool{true, false} {
				name := tc.name + " gzip=" + strconv.FormatBool(acceptGzip)
				hdr := withGzip(promText, acceptGzip)
				direct := mustGet(t, c, tc.url, hdr)
				proxied := mustGet(t, c, tun.proxy.url(tc.path), hdr)
				sameAnswer(t, name, direct, proxied)
				if acceptGzip && !bytes.Equal(proxied.raw, tc.gz) {
					t.Errorf("%s: the target's gzip bytes were not passed through as they are (%d bytes, want %d, Content-Encoding %q)",
						name, len(proxied.raw), len(tc.gz), proxied.header.Get("Content-Encoding"))
				}
				if !acceptGzip && proxied.header.Get("Content-Encoding") != "" {
					t.Errorf("%s: Content-Encoding %q for a client that does not accept gzip", name, proxied.header.Get("Content-Encoding"))
				}
			}
		}
	})

	t.Run("federate query", func(t *testing.T) {
		for _, q := range []string{
			"match[]=up",
			"match%5B%5D=%7Bjob%3D%22node%22%7D&match%5B%5D=up",
			"match[]={__name__=~%22job:.*%22}",
		} {
			direct := mustGet(t, c, target.URL+"/federate?"+q, promText)
			proxied := mustGet(t, c, tun.proxy.url("federate?"+q), promText)
			sameAnswer(t, q, direct, proxied)
			if !strings.Contains(string(proxied.body), "raw_query="+q+"\n") {
				t.Errorf("query %q reached the target as %q", q, proxied.body)
			}
		}
	})
}
