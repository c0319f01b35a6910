package e2e

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"testing"
)

// reply is one HTTP answer as Prometheus sees it.
type reply struct {
	status int
	header http.Header
	raw    []byte // the bytes on the wire
	body   []byte // raw, decoded when Content-Encoding is gzip
}

// newHTTPClient returns a client that, like a byte-exact comparison needs,
// never decompresses on its own: the caller says whether it accepts gzip.
func newHTTPClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 128}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get GETs url with hdr and reads the whole answer. An error means the
// transfer broke, as Prometheus would see it.
func get(c *http.Client, url string, hdr map[string]string) (reply, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode, header: resp.Header}
	if r.raw, err = io.ReadAll(resp.Body); err != nil {
		return r, fmt.Errorf("read body of %s after %d bytes: %w", url, len(r.raw), err)
	}
	r.body = r.raw
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(r.raw))
		if err != nil {
			return r, fmt.Errorf("gzip body of %s: %w", url, err)
		}
		if r.body, err = io.ReadAll(zr); err != nil {
			return r, fmt.Errorf("gzip body of %s: %w", url, err)
		}
	}
	return r, nil
}

// mustGet is get that fails the test on a broken transfer.
func mustGet(t testing.TB, c *http.Client, url string, hdr map[string]string) reply {
	t.Helper()
	r, err := get(c, url, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sameAnswer fails unless the proxied reply carries the direct reply's
// status, content type and body, byte for byte.
func sameAnswer(t testing.TB, what string, direct, proxied reply) {
	t.Helper()
	if proxied.status != direct.status {
		t.Errorf("%s: status %d through the proxy, %d direct; body %.200q", what, proxied.status, direct.status, proxied.body)
	}
	if got, want := proxied.header.Values("Content-Type"), direct.header.Values("Content-Type"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: Content-Type %q through the proxy, %q direct", what, got, want)
	}
	if !bytes.Equal(proxied.body, direct.body) {
		t.Errorf("%s: body differs: %d bytes through the proxy, %d direct; first difference at byte %d",
			what, len(proxied.body), len(direct.body), firstDiff(proxied.body, direct.body))
	}
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
