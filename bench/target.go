package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// bodySizes are the exposition sizes the target serves, by URL name.
var bodySizes = map[string]int{"10k": 10 << 10, "1m": 1 << 20, "20m": 20 << 20}

// targetBody is one exposition in both encodings.
type targetBody struct {
	plain, gz []byte
}

// serveTarget is the target process: it serves /<size>/gzip, which gzips
// for clients that accept it, as every promhttp exporter does, and
// /<size>/plain, which never compresses. Bodies and their gzip form are
// built once at start, so the target costs as little CPU as possible per
// scrape and the direct baseline is as fast as this machine allows; the
// ratio to direct is then a strict measure of what the proxy adds. Like
// promhttp, responses carry no Content-Length.
func serveTarget(ctx context.Context, addr string) error {
	bodies := make(map[string]targetBody, len(bodySizes))
	for name, n := range bodySizes {
		plain := exposition(n)
		bodies[name] = targetBody{plain: plain, gz: gzipBytes(plain)}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{size}/{enc}", func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.PathValue("size")]
		enc := r.PathValue("enc")
		if !ok || (enc != "gzip" && enc != "plain") {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		body := b.plain
		if enc == "gzip" && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			h.Set("Content-Encoding", "gzip")
			body = b.gz
		}
		// Written in pieces, so net/http streams the answer chunked as
		// promhttp's does rather than computing a Content-Length.
		for len(body) > 0 {
			n := min(len(body), 32<<10)
			if _, err := w.Write(body[:n]); err != nil {
				return
			}
			body = body[n:]
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stdout, "target ready")
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago. The
// processes under test take their ports as numbers, so the bench picks them.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// fetchOnce GETs url and returns the body as it came over the wire.
func fetchOnce(ctx context.Context, c *http.Client, url string, hdr map[string]string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, strconv.Quote(string(b[:min(len(b), 200)])))
	}
	return b, resp.Header, nil
}
