package client

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"testing"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

// FuzzLimitReader reads arbitrary data through limitReader with arbitrary
// buffer sizes: it must never hand out more than the limit, must deliver a
// body within the limit whole, and must fail a longer one.
func FuzzLimitReader(f *testing.F) {
	f.Add([]byte("metric 1\n"), uint16(9), uint8(1))
	f.Add([]byte("metric 1\n"), uint16(8), uint8(3))
	f.Add(bytes.Repeat([]byte{'x'}, 5000), uint16(4096), uint8(255))
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, step uint8) {
		lr := &limitReader{r: &stepReader{data: data, step: int(step%64) + 1}, left: int64(limit)}
		buf := make([]byte, int(step)%97+1)
		var got []byte
		var err error
		for range len(data) + 3 {
			var n int
			n, err = lr.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if len(got) > int(limit) {
			t.Fatalf("read %d bytes through a limit of %d", len(got), limit)
		}
		if len(data) <= int(limit) {
			if err != io.EOF || !bytes.Equal(got, data) {
				t.Fatalf("body of %d bytes within a limit of %d: got %d bytes, err %v", len(data), limit, len(got), err)
			}
		} else if !errors.Is(err, errTooLarge) {
			t.Fatalf("body of %d bytes over a limit of %d: err %v", len(data), limit, err)
		}
	})
}

// stepReader returns at most step bytes per Read, and io.EOF with the last
// ones, like a network body does.
type stepReader struct {
	data []byte
	step int
	cut  bool // end with io.ErrUnexpectedEOF instead of io.EOF
}

func (r *stepReader) Read(p []byte) (int, error) {
	n := copy(p, r.data[:min(len(r.data), r.step)])
	r.data = r.data[n:]
	if len(r.data) == 0 {
		if r.cut {
			return n, io.ErrUnexpectedEOF
		}
		return n, io.EOF
	}
	return n, nil
}

// FuzzRelay drives the agent's whole body path (limit, gzip, chunking,
// checksums) with arbitrary bodies and settings, and checks that the frames
// it emits reassemble to the target's body exactly, or end in the failure
// the body deserves: too large, or cut short by the target.
func FuzzRelay(f *testing.F) {
	f.Add([]byte("# TYPE up gauge\nup 1\n"), uint16(1024), uint16(100), uint16(512), true, false, false, false)
	f.Add(bytes.Repeat([]byte("metric_total{a=\"b\"} 12345\n"), 400), uint16(0), uint16(60000), uint16(0), true, true, false, false)
	f.Add(bytes.Repeat([]byte("y"), 3000), uint16(2048), uint16(2999), uint16(10), false, false, false, true)
	f.Add(bytes.Repeat([]byte("z"), 3000), uint16(1024), uint16(5000), uint16(10), true, false, true, false)
	f.Fuzz(func(t *testing.T, data []byte, chunk, limit, minGzip uint16, gzipOn, declare, targetGzip, cut bool) {
		chunkSize := int(chunk)%8192 + 1024
		body := data
		enc := ""
		if targetGzip {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			_, _ = zw.Write(data)
			_ = zw.Close()
			body, enc = z.Bytes(), "gzip"
		}
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1,
			Body: io.NopCloser(&stepReader{data: body, step: 700, cut: cut})}
		resp.Header.Set("Content-Type", "text/plain")
		if enc != "" {
			resp.Header.Set("Content-Encoding", enc)
		}
		if declare {
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &session{ctx: ctx, out: make(chan outbound, 1<<16)}
		e := &emitter{s: s, ctx: ctx, id: 7, credit: newCredit(1 << 30), chunkSize: chunkSize}
		fail, msg := e.relay(resp, int64(limit), gzipOn, int(minGzip))
		close(s.out)
		var frames []*promproxyv1.ScrapeResult
		for o := range s.out {
			frames = append(frames, o.msg.GetScrapeResult())
			if o.release != nil {
				o.release()
			}
		}

		switch {
		case len(body) > int(limit):
			if fail != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE {
				t.Fatalf("body of %d bytes over a limit of %d: failure %v %q", len(body), limit, fail, msg)
			}
			return
		case cut:
			if fail != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_ERROR {
				t.Fatalf("body cut short by the target: failure %v %q, want UPSTREAM_ERROR", fail, msg)
			}
			return
		case fail != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED:
			t.Fatalf("intact body of %d bytes within %d: failure %v %q", len(body), limit, fail, msg)
		}

		if len(frames) == 0 || frames[0].GetHeader() == nil {
			t.Fatal("no header frame")
		}
		hdr := frames[0].GetHeader()
		var got []byte
		var crc uint32
		for i, fr := range frames {
			if fr.GetScrapeId() != 7 || (i > 0 && fr.GetHeader() != nil) {
				t.Fatalf("frame %d: wrong scrape id or a second header", i)
			}
			if crc32.ChecksumIEEE(fr.GetChunk()) != fr.GetChunkCrc32() {
				t.Fatalf("frame %d: chunk checksum mismatch", i)
			}
			if len(fr.GetChunk()) > chunkSize {
				t.Fatalf("frame %d: %d bytes, chunk size %d", i, len(fr.GetChunk()), chunkSize)
			}
			if (fr.GetTrailer() != nil) != (i == len(frames)-1) {
				t.Fatalf("frame %d of %d: trailer misplaced", i, len(frames))
			}
			got = append(got, fr.GetChunk()...)
			crc = crc32.Update(crc, crc32.IEEETable, fr.GetChunk())
		}
		tr := frames[len(frames)-1].GetTrailer()
		if tr.GetBodyLength() != int64(len(got)) || tr.GetBodyCrc32() != crc {
			t.Fatal("trailer summary does not match the frames")
		}
		if n := hdr.GetContentLength(); n != -1 && n != int64(len(got)) {
			t.Fatalf("header declares %d bytes, frames carry %d", n, len(got))
		}
		switch hdr.GetContentEncoding() {
		case "gzip":
			zr, err := gzip.NewReader(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("gzip header: %v", err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, data) {
				t.Fatalf("gunzipped body differs from the target's (%v)", err)
			}
			if !targetGzip && !gzipOn {
				t.Fatal("gzipped although gzip is off")
			}
		case "":
			if targetGzip || !bytes.Equal(got, data) {
				t.Fatal("identity body differs from the target's")
			}
		default:
			t.Fatalf("content encoding %q", hdr.GetContentEncoding())
		}
	})
}
