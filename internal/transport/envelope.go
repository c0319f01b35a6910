package transport

import (
	"encoding/binary"
	"io"
	"net/http"
	"strings"
)

// WholeMessages wraps the agent's HTTP transport so that every gRPC
// message it sends is one HTTP/2 DATA frame. Every program that speaks the
// agent's side of the protocol should use it.
func WholeMessages(base http.RoundTripper) http.RoundTripper { return wholeMessages{base} }

// wholeMessages is the session's HTTP transport. It makes every protocol
// message one HTTP/2 DATA frame: Connect writes a message's 5-byte gRPC
// prefix and its payload into the request body as two writes, and the
// HTTP/2 transport sends and flushes one DATA frame per read of the body.
// Without this, every message costs the agent two write syscalls and the
// proxy, whose HTTP/2 server reads frames unbuffered, four reads.
type wholeMessages struct {
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t wholeMessages) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody && strings.HasPrefix(req.Header.Get("Content-Type"), "application/grpc") {
		r := req.WithContext(req.Context()) // a RoundTripper must not modify req
		r.Body = &envelopeReader{r: req.Body}
		req = r
	}
	return t.base.RoundTrip(req)
}

// CloseIdleConnections closes the base transport's idle connections.
func (t wholeMessages) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// envelopeReader returns a gRPC-framed stream one whole message per Read
// when the caller's buffer can hold it. The bytes are those of the stream,
// in order, whatever the buffer size: only how they are split changes.
type envelopeReader struct {
	r    io.ReadCloser
	left int64 // bytes of the current message not yet returned
	// raw gives up on message boundaries after a Read with a buffer too
	// small for a prefix; no caller does that, but it must stay correct.
	raw bool
}

const envelopePrefix = 5

func (e *envelopeReader) Read(p []byte) (int, error) {
	switch {
	case e.raw || (e.left == 0 && len(p) < envelopePrefix):
		e.raw = true
		return e.r.Read(p)
	case e.left > 0:
		n, err := io.ReadFull(e.r, p[:min(int64(len(p)), e.left)])
		e.left -= int64(n)
		return n, midMessage(err)
	}
	// The payload is written right after its prefix, so waiting for it
	// cannot block on anything but the writer's next instruction.
	n, err := io.ReadFull(e.r, p[:envelopePrefix])
	if err != nil {
		return n, err // io.EOF before a prefix is the clean end of the stream
	}
	size := int64(binary.BigEndian.Uint32(p[1:envelopePrefix]))
	m, err := io.ReadFull(e.r, p[envelopePrefix:envelopePrefix+min(int64(len(p)-envelopePrefix), size)])
	e.left = size - int64(m)
	return envelopePrefix + m, midMessage(err)
}

// midMessage turns an end of stream inside a message into the error it is.
func midMessage(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Close closes the underlying body.
func (e *envelopeReader) Close() error { return e.r.Close() }
