package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
)

func TestInProcessBodies(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 100, 10 << 10, 1 << 20, 5 << 20}
	bodies := map[int][]byte{}
	for _, n := range sizes {
		bodies[n] = exposition(n)
	}
	target := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		var n int
		switch r.URL.Path {
		case "/0":
			n = 0
		case "/100":
			n = 100
		case "/10k":
			n = 10 << 10
		case "/1m":
			n = 1 << 20
		case "/5m":
			n = 5 << 20
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(bodies[n])
	})
	p := startProxy(t, nil)
	a := startAgent(t, p, []client.PathConfig{
		{Path: "b0", URL: target.URL + "/0"},
		{Path: "b100", URL: target.URL + "/100"},
		{Path: "b10k", URL: target.URL + "/10k"},
		{Path: "b1m", URL: target.URL + "/1m"},
		{Path: "b5m", URL: target.URL + "/5m"},
	}, nil)
	waitFor(t, "paths registered", 10*time.Second, func() bool { return a.RegisteredPaths() == 5 })
	cases := []struct {
		path string
		size int
	}{{"b0", 0}, {"b100", 100}, {"b10k", 10 << 10}, {"b1m", 1 << 20}, {"b5m", 5 << 20}}
	for _, tc := range cases {
		for _, gz := range []bool{false, true} {
			hc := &http.Client{Transport: &http.Transport{DisableCompression: !gz}}
			resp, body, err := scrape(t, hc, proxyURL(p, tc.path), nil)
			if err != nil {
				t.Fatalf("%s gzip=%v: %v", tc.path, gz, err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d: %s", tc.path, resp.StatusCode, body)
			}
			if !bytes.Equal(body, bodies[tc.size]) {
				t.Fatalf("%s gzip=%v: body differs: got %d bytes, want %d", tc.path, gz, len(body), tc.size)
			}
		}
	}
}
