package server

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/internal/redact"
)

// Integrity failures of a streamed body.
var (
	errChunkCRC      = errors.New("chunk checksum mismatch")
	errSummary       = errors.New("body length or checksum does not match the agent's summary")
	errUnexpectedHdr = errors.New("agent sent a second header for one scrape")
)

// failureError is a failure the agent reported in a trailer.
type failureError struct {
	failure promproxyv1.ScrapeFailure
	message string
}

func (e *failureError) Error() string {
	return fmt.Sprintf("%s: %s", e.failure, e.message)
}

// bodyStream yields the verified chunks of one scrape's body. It always
// holds back the most recent chunk until the next frame has arrived, and
// releases the last one only after the whole body matched the trailer's
// length and CRC. A client that got a Content-Length therefore never receives
// all of its bytes unless the body is intact; on failure the handler aborts
// the response and the client sees a broken transfer, never a complete one.
type bodyStream struct {
	next     func() (*promproxyv1.ScrapeResult, error)
	pending  *promproxyv1.ScrapeResult // frame to process before calling next
	declared int64                     // Content-Length from the header, or -1
	maxBody  int64

	held     []byte
	buf      []byte // unread part of the chunk being returned by Read
	n        int64
	crc      uint32
	finished bool
	err      error
	frames   int
}

func newBodyStream(first *promproxyv1.ScrapeResult, declared, maxBody int64, next func() (*promproxyv1.ScrapeResult, error)) *bodyStream {
	return &bodyStream{next: next, pending: first, declared: declared, maxBody: maxBody}
}

// advance returns the next chunk that may be released to the client.
func (b *bodyStream) advance() ([]byte, error) {
	for {
		if b.err != nil {
			return nil, b.err
		}
		if b.finished {
			if h := b.held; h != nil {
				b.held = nil
				return h, nil
			}
			return nil, io.EOF
		}
		f := b.pending
		b.pending = nil
		if f == nil {
			var err error
			if f, err = b.next(); err != nil {
				b.err = err
				return nil, err
			}
			if f.GetHeader() != nil {
				b.err = errUnexpectedHdr
				return nil, b.err
			}
		}
		b.frames++
		data := f.GetChunk()
		if crc32.ChecksumIEEE(data) != f.GetChunkCrc32() {
			b.err = errChunkCRC
			return nil, b.err
		}
		b.crc = crc32.Update(b.crc, crc32.IEEETable, data)
		b.n += int64(len(data))
		if b.declared >= 0 && b.n > b.declared {
			b.err = fmt.Errorf("%w: %d bytes received, %d declared", errSummary, b.n, b.declared)
			return nil, b.err
		}
		if b.maxBody > 0 && b.n > b.maxBody {
			b.err = &failureError{failure: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_CONTENT_TOO_LARGE, message: fmt.Sprintf("body exceeds %d bytes", b.maxBody)}
			return nil, b.err
		}
		if t := f.GetTrailer(); t != nil {
			if t.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
				b.err = &failureError{failure: t.GetFailure(), message: redact.Text(t.GetMessage())}
				return nil, b.err
			}
			if t.GetBodyLength() != b.n || t.GetBodyCrc32() != b.crc || (b.declared >= 0 && b.declared != b.n) {
				b.err = errSummary
				return nil, b.err
			}
			b.finished = true
		}
		if len(data) == 0 {
			continue
		}
		prev := b.held
		b.held = data
		if prev != nil {
			return prev, nil
		}
	}
}

// Read implements io.Reader for consumers that need one, such as gzip.
func (b *bodyStream) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		chunk, err := b.advance()
		if err != nil {
			return 0, err
		}
		b.buf = chunk
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

// WriteTo writes the chunks straight from the received messages, without
// an intermediate buffer.
func (b *bodyStream) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(b.buf) > 0 {
		n, err := w.Write(b.buf)
		total += int64(n)
		b.buf = nil
		if err != nil {
			return total, err
		}
	}
	for {
		chunk, err := b.advance()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := w.Write(chunk)
		total += int64(n)
		if err != nil {
			return total, &clientWriteError{err}
		}
	}
}

// clientWriteError marks a failure to write to the client, as opposed to a
// failure of the body itself.
type clientWriteError struct{ err error }

func (e *clientWriteError) Error() string { return "write to client: " + e.err.Error() }
func (e *clientWriteError) Unwrap() error { return e.err }
