package server

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
)

// frames cuts body into chunk-sized frames with valid checksums.
func frames(body []byte, chunk int) []*promproxyv1.ScrapeResult {
	var out []*promproxyv1.ScrapeResult
	for off := 0; off < len(body) || len(out) == 0; off += chunk {
		end := min(off+chunk, len(body))
		c := body[off:end]
		out = append(out, &promproxyv1.ScrapeResult{Chunk: c, ChunkCrc32: crc32.ChecksumIEEE(c)})
		if end == len(body) {
			break
		}
	}
	out[0].Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: int64(len(body))}
	out[len(out)-1].Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE(body)}
	return out
}

func streamOf(fs []*promproxyv1.ScrapeResult, declared int64) *bodyStream {
	i := 1
	return newBodyStream(fs[0], declared, 0, func() (*promproxyv1.ScrapeResult, error) {
		if i >= len(fs) {
			return nil, errors.New("no more frames")
		}
		i++
		return fs[i-1], nil
	})
}

func TestBodyStreamIntact(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("metric_a 1\n"), 1000)
	var got bytes.Buffer
	if _, err := streamOf(frames(body, 1000), int64(len(body))).WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), body) {
		t.Fatal("body changed in transit")
	}
}

func TestBodyStreamFailures(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("metric_b 2\n"), 1000)
	tests := []struct {
		name   string
		mutate func([]*promproxyv1.ScrapeResult) []*promproxyv1.ScrapeResult
		want   error
	}{
		{name: "chunk crc", want: errChunkCRC, mutate: func(fs []*promproxyv1.ScrapeResult) []*promproxyv1.ScrapeResult {
			fs[3].ChunkCrc32++
			return fs
		}},
		{name: "summary crc", want: errSummary, mutate: func(fs []*promproxyv1.ScrapeResult) []*promproxyv1.ScrapeResult {
			fs[len(fs)-1].Trailer.BodyCrc32++
			return fs
		}},
		{name: "missing chunk", want: errSummary, mutate: func(fs []*promproxyv1.ScrapeResult) []*promproxyv1.ScrapeResult {
			return append(fs[:2:2], fs[3:]...)
		}},
		{name: "second header", want: errUnexpectedHdr, mutate: func(fs []*promproxyv1.ScrapeResult) []*promproxyv1.ScrapeResult {
			fs[2].Header = &promproxyv1.ScrapeHeader{}
			return fs
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := tt.mutate(frames(body, 1000))
			var got bytes.Buffer
			_, err := streamOf(fs, -1).WriteTo(&got)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// The last chunk is never released unverified, so a failing
			// body is always short of the whole.
			if got.Len() >= len(body) {
				t.Fatalf("released %d of %d bytes of a broken body", got.Len(), len(body))
			}
		})
	}
}

func TestBodyStreamHoldsBackLastChunk(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("x"), 3000)
	fs := frames(body, 1000)
	delivered := 1
	b := newBodyStream(fs[0], -1, 0, func() (*promproxyv1.ScrapeResult, error) {
		if delivered >= len(fs) {
			return nil, io.ErrUnexpectedEOF
		}
		delivered++
		return fs[delivered-1], nil
	})
	// The first chunk can only be released once the second frame is in.
	if _, err := b.advance(); err != nil {
		t.Fatal(err)
	}
	if delivered != 2 {
		t.Fatalf("first chunk released after %d frames, want 2", delivered)
	}
}

func TestBodyStreamReportsAgentFailure(t *testing.T) {
	t.Parallel()
	fs := frames(bytes.Repeat([]byte("y"), 2000), 1000)
	fs[1].Trailer.Failure = promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE
	_, err := io.ReadAll(streamOf(fs, -1))
	var fe *failureError
	if !errors.As(err, &fe) || fe.failure != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE {
		t.Fatalf("err = %v, want the agent's failure", err)
	}
}
