package server

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/internal/pathspec"
)

// FuzzBodyStream feeds arbitrary frame sequences to the reassembly: it must
// never release a complete body that differs from what the frames carried
// with a matching summary, and never panic.
func FuzzBodyStream(f *testing.F) {
	f.Add([]byte("metric 1\nmetric 2\n"), uint8(4), uint8(0), false)
	f.Add(bytes.Repeat([]byte("x"), 100), uint8(7), uint8(3), true)
	f.Add([]byte{}, uint8(1), uint8(0), false)
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8, corrupt uint8, lie bool) {
		size := int(chunk%16) + 1
		var fs []*promproxyv1.ScrapeResult
		for off := 0; off < len(body) || len(fs) == 0; off += size {
			end := min(off+size, len(body))
			c := append([]byte(nil), body[off:end]...)
			fs = append(fs, &promproxyv1.ScrapeResult{Chunk: c, ChunkCrc32: crc32.ChecksumIEEE(c)})
			if end >= len(body) {
				break
			}
		}
		fs[0].Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: -1}
		fs[len(fs)-1].Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(body)), BodyCrc32: crc32.ChecksumIEEE(body)}
		tampered := false
		if corrupt > 0 && len(body) > 0 {
			i := int(corrupt) % len(fs)
			if len(fs[i].Chunk) > 0 {
				fs[i].Chunk[0] ^= corrupt
				tampered = true
				if lie {
					fs[i].ChunkCrc32 = crc32.ChecksumIEEE(fs[i].Chunk)
				}
			}
		}
		i := 1
		b := newBodyStream(fs[0], -1, 0, func() (*promproxyv1.ScrapeResult, error) {
			if i >= len(fs) {
				return nil, io.ErrUnexpectedEOF
			}
			i++
			return fs[i-1], nil
		})
		var got bytes.Buffer
		_, err := b.WriteTo(&got)
		if tampered {
			if err == nil {
				t.Fatal("a tampered body passed verification")
			}
			if !errors.Is(err, errChunkCRC) && !errors.Is(err, errSummary) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("intact body rejected: %v", err)
		}
		if !bytes.Equal(got.Bytes(), body) {
			t.Fatal("reassembled body differs")
		}
	})
}

// FuzzValidatePath checks that every accepted path is a single safe
// segment.
func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"app", "a/b", "..", "a%2F", "x y", "ok-1.2_3~:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if validatePath(p) != nil {
			return
		}
		if p == "" || p == "." || p == ".." || bytes.ContainsAny([]byte(p), "/?#% \\\x00\n") || len(p) > pathspec.MaxLen {
			t.Fatalf("accepted unsafe path %q", p)
		}
	})
}
