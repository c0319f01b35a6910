package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// envelopes writes each payload as Connect does: the 5-byte prefix, then
// the payload, as two writes.
func envelopes(w *io.PipeWriter, payloads [][]byte, truncate bool) {
	for _, p := range payloads {
		var prefix [envelopePrefix]byte
		binary.BigEndian.PutUint32(prefix[1:], uint32(len(p)))
		if _, err := w.Write(prefix[:]); err != nil {
			return
		}
		if truncate {
			_, _ = w.Write(p[:len(p)/2])
			_ = w.Close()
			return
		}
		if len(p) > 0 {
			if _, err := w.Write(p); err != nil {
				return
			}
		}
	}
	_ = w.Close()
}

func TestEnvelopeReader(t *testing.T) {
	t.Parallel()
	payloads := [][]byte{bytes.Repeat([]byte("a"), 100), {}, bytes.Repeat([]byte("b"), 40000), []byte("c")}
	var want []byte
	for _, p := range payloads {
		want = append(want, 0, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
		want = append(want, p...)
	}
	tests := []struct {
		name    string
		bufSize int
		// whole says every Read must return exactly one message.
		whole bool
	}{
		{name: "buffer larger than every message", bufSize: 64 << 10, whole: true},
		{name: "buffer smaller than a message", bufSize: 16 << 10},
		{name: "buffer smaller than a prefix", bufSize: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pr, pw := io.Pipe()
			go envelopes(pw, payloads, false)
			r := &envelopeReader{r: pr}
			var got []byte
			buf := make([]byte, tt.bufSize)
			for reads := 0; ; reads++ {
				n, err := r.Read(buf)
				if tt.whole && err == nil && n != envelopePrefix+len(payloads[reads]) {
					t.Fatalf("read %d returned %d bytes, want the whole message of %d", reads, n, envelopePrefix+len(payloads[reads]))
				}
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("stream changed: got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}

func TestEnvelopeReaderTruncated(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	go envelopes(pw, [][]byte{bytes.Repeat([]byte("x"), 1000)}, true)
	_, err := io.ReadAll(&envelopeReader{r: pr})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF for a stream that ends inside a message", err)
	}
}
