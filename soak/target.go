package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
)

// targetHandler serves every soak path. Each answer is different (a
// sequence number runs through it) and ends with a line naming its path,
// length and checksum, so that any body can be verified on its own: a
// truncated, corrupted or misrouted body is caught without keeping a copy.
func targetHandler() http.Handler {
	var seq atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/t/")
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		body := makeBody(path, seq.Add(1), size)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.URL.Query().Get("gz") == "1" && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			// Like exporters that compress themselves: the agent must pass
			// these bytes through untouched.
			var z bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
			_, _ = zw.Write(body)
			_ = zw.Close()
			w.Header().Set("Content-Encoding", "gzip")
			body = z.Bytes()
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
}

// makeBody returns about size bytes of exposition text for path.
func makeBody(path string, seq uint64, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 128)
	b.WriteString("# HELP soak_value A value from the soak's targets.\n# TYPE soak_value gauge\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "soak_value{path=%q,seq=\"%d\",i=\"%d\"} %d\n", path, seq, i, (seq*31+uint64(i)*17)%100003)
	}
	fmt.Fprintf(&b, "# soak path=%s seq=%d len=%d crc=%08x\n", path, seq, b.Len(), crc32.ChecksumIEEE(b.Bytes()))
	return b.Bytes()
}

// verifyBody checks that body is a complete, intact answer for path.
func verifyBody(path string, body []byte) error {
	if !bytes.HasSuffix(body, []byte("\n")) {
		return fmt.Errorf("%d bytes without the final newline: cut short", len(body))
	}
	trimmed := body[:len(body)-1]
	i := bytes.LastIndexByte(trimmed, '\n')
	if i < 0 || !bytes.HasPrefix(trimmed[i+1:], []byte("# soak ")) {
		return fmt.Errorf("no closing line in %d bytes", len(body))
	}
	prefix, last := body[:i+1], string(trimmed[i+1:])
	var gotPath string
	var seq uint64
	var n int
	var crc uint32
	if _, err := fmt.Sscanf(last, "# soak path=%s seq=%d len=%d crc=%08x", &gotPath, &seq, &n, &crc); err != nil {
		return fmt.Errorf("closing line %q: %v", last, err)
	}
	switch {
	case gotPath != path:
		return fmt.Errorf("body of path %q served for %q", gotPath, path)
	case n != len(prefix):
		return fmt.Errorf("%d bytes, the target sent %d", len(prefix), n)
	case crc32.ChecksumIEEE(prefix) != crc:
		return fmt.Errorf("checksum mismatch over %d bytes", n)
	}
	return nil
}
