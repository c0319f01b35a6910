package transport

import (
	"context"
	"net/http"
)

// MaxFrameSize is the largest HTTP/2 frame the proxy's agent port accepts.
// A scrape chunk at the default 32 KiB (plus its few bytes of framing)
// travels as one frame, so the agent writes it in one call and the proxy
// reads it as one frame; a larger limit would only grow the buffer that
// each connection keeps for the largest frame it has read.
const MaxFrameSize = 64 << 10

// AwaitSettings makes one HEAD request to url and discards the answer, so
// that the connection the next request takes has seen the server's HTTP/2
// SETTINGS.
//
// The HTTP/2 transport sizes a request body's frames from the server's
// SETTINGS as they stand when the request starts, and keeps that size for
// the life of the stream. A long stream opened on a brand-new connection,
// before the server's SETTINGS arrive, is held to HTTP/2's default 16 KiB
// frames for good: a 32 KiB message then costs three writes and three
// frames. The server sends its SETTINGS before any answer on the
// connection, and the transport reads frames in order, so once this
// request's answer is in, the frame size is the server's.
//
// The answer's status does not matter, since the server's SETTINGS came
// before it whatever it was. An error is returned as it is; a caller that
// can do without whole frames, as the agent can, should go on regardless,
// since something between client and server may refuse a HEAD.
func AwaitSettings(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
