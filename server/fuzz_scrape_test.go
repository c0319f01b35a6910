package server

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzGunzipAll decompresses arbitrary input, valid gzip or not, under a
// limit: it must never return more than the limit, must return exactly
// what the gzip package decodes when that fits, and must refuse with
// errTooLarge when it does not.
func FuzzGunzipAll(f *testing.F) {
	gz := func(b []byte) []byte {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		_, _ = w.Write(b)
		_ = w.Close()
		return z.Bytes()
	}
	f.Add(gz([]byte("metric 1\n")), uint32(100), false)
	f.Add(gz(make([]byte, 1<<16)), uint32(1000), false)
	f.Add(gz([]byte("metric 1\n")), uint32(100), true)
	f.Add([]byte("not gzip at all"), uint32(100), false)
	f.Add(append(gz([]byte("a")), gz([]byte("b"))...), uint32(1), false)
	f.Fuzz(func(t *testing.T, in []byte, limit uint32, compress bool) {
		if compress {
			// Turn arbitrary bytes into valid gzip, so that the limit is
			// exercised, not just the header check.
			in = gz(in)
		}
		lim := int64(limit % (1 << 20))
		out, err := gunzipAll(bytes.NewReader(in), lim)
		if int64(len(out)) > lim {
			t.Fatalf("returned %d bytes over a limit of %d", len(out), lim)
		}
		zr, rerr := gzip.NewReader(bytes.NewReader(in))
		var want []byte
		if rerr == nil {
			// Read one byte past the limit at most: enough to know whether
			// the body fits, without expanding a bomb.
			want, rerr = io.ReadAll(io.LimitReader(zr, lim+1))
			if rerr == nil && int64(len(want)) <= lim {
				rerr = zr.Close()
				if rerr == nil {
					_, rerr = zr.Read(make([]byte, 1))
					if rerr == io.EOF {
						rerr = nil
					}
				}
			}
		}
		switch {
		case rerr != nil:
			if err == nil {
				t.Fatalf("accepted input the gzip package rejects (%v)", rerr)
			}
		case int64(len(want)) > lim:
			if !errors.Is(err, errTooLarge) {
				t.Fatalf("body over the limit of %d: err %v, want errTooLarge", lim, err)
			}
		default:
			if err != nil || !bytes.Equal(out, want) {
				t.Fatalf("body within the limit: err %v, %d bytes, want %d", err, len(out), len(want))
			}
		}
	})
}

// FuzzLimitedWriter writes arbitrary pieces under a limit: it must pass
// through exactly the pieces that fit, and fail, writing nothing, on the
// first that does not.
func FuzzLimitedWriter(f *testing.F) {
	f.Add([]byte("abcdefghij"), uint16(10), uint8(3))
	f.Add([]byte("abcdefghij"), uint16(9), uint8(10))
	f.Add([]byte{}, uint16(0), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, piece uint8) {
		size := int(piece)%17 + 1
		var dst bytes.Buffer
		lw := &limitedWriter{w: &dst, limit: int64(limit)}
		off := 0
		for off < len(data) {
			end := min(off+size, len(data))
			n, err := lw.Write(data[off:end])
			if err != nil {
				if !errors.Is(err, errTooLarge) || n != 0 || end <= int(limit) {
					t.Fatalf("write of [%d:%d] under limit %d: n=%d err=%v", off, end, limit, n, err)
				}
				break
			}
			if end > int(limit) {
				t.Fatalf("wrote up to byte %d past the limit of %d", end, limit)
			}
			off = end
		}
		if !bytes.Equal(dst.Bytes(), data[:off]) {
			t.Fatal("the underlying writer got something else than the accepted pieces")
		}
	})
}

// FuzzScrapeTimeout feeds arbitrary X-Prometheus-Scrape-Timeout-Seconds
// values: the timeout used must always be positive and never exceed the
// proxy's own ScrapeRequestTimeout, and the agent's share must leave the
// proxy a margin.
func FuzzScrapeTimeout(f *testing.F) {
	for _, s := range []string{"10", "0.5", "-3", "0", "NaN", "+Inf", "1e400", "1e-300", "9007199254740993", " 5", "0x10"} {
		f.Add(s)
	}
	p := &Proxy{opts: DefaultOptions()}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := http.NewRequest(http.MethodGet, "http://proxy/app", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strings.ToValidUTF8(v, ""))
		d := p.scrapeTimeout(r)
		if d <= 0 || d > p.opts.ScrapeRequestTimeout {
			t.Fatalf("header %q: timeout %v outside (0, %v]", v, d, p.opts.ScrapeRequestTimeout)
		}
		if a := agentTimeout(d); a <= 0 || a > d || (d >= 10*time.Millisecond && a == d) {
			t.Fatalf("header %q: agent timeout %v for a scrape timeout of %v", v, a, d)
		}
	})
}

// FuzzAcceptsGzip feeds arbitrary Accept-Encoding values: an explicit
// refusal of gzip must be honoured, and a header that names neither gzip
// nor * must not be read as accepting it.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "GZIP; q=0.5", "br, *", "identity", "*;q=0", "", "gzip;q=0.000", ",,gzip"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r, err := http.NewRequest(http.MethodGet, "http://proxy/app", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Accept-Encoding", v)
		got := acceptsGzip(r)
		l := strings.ToLower(v)
		if got && !strings.Contains(l, "gzip") && !strings.Contains(l, "*") {
			t.Fatalf("%q read as accepting gzip", v)
		}
		if strings.TrimSpace(l) == "gzip;q=0" && got {
			t.Fatalf("%q refuses gzip but was read as accepting it", v)
		}
	})
}
