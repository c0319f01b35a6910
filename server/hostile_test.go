package server_test

import (
	"bytes"
	"hash/crc32"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/server"
)

// A hostile or broken agent must only ever hurt its own session: each case
// ends with a healthy second agent still being scraped correctly.
func TestHostileAgent(t *testing.T) {
	t.Parallel()
	ok := []byte("healthy 1\n")
	tests := []struct {
		name string
		// act misbehaves on the session, given the id of a scrape in flight
		// (0 when the case needs none).
		act      func(t *testing.T, fa *fakeAgent, scrapeID uint64)
		inFlight bool
		// wantCode is the session's end, or 0 when the session survives.
		wantCode   connect.Code
		wantStatus int // of the scrape in flight
	}{
		{name: "oversized message", wantCode: connect.CodeResourceExhausted, act: func(t *testing.T, fa *fakeAgent, _ uint64) {
			_ = fa.stream.Send(frame(1, make([]byte, 300<<10)))
		}},
		{name: "frames for an unknown scrape", act: func(t *testing.T, fa *fakeAgent, _ uint64) {
			f := frame(12345, []byte("x"))
			f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: 1, BodyCrc32: crc32.ChecksumIEEE([]byte("x"))}
			fa.send(f)
		}},
		// In the cases that end the session, the proxy may close the stream
		// before the agent's send returns, which then fails with EOF; the
		// code the session ends with is what is checked.
		{name: "second registration", wantCode: connect.CodeInvalidArgument, act: func(t *testing.T, fa *fakeAgent, _ uint64) {
			_ = fa.stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{AgentName: "again"}}})
		}},
		{name: "empty envelope", wantCode: connect.CodeInvalidArgument, act: func(t *testing.T, fa *fakeAgent, _ uint64) {
			_ = fa.stream.Send(&promproxyv1.SessionRequest{})
		}},
		{name: "body longer than declared", inFlight: true, wantStatus: http.StatusBadGateway, act: func(t *testing.T, fa *fakeAgent, id uint64) {
			body := []byte("0123456789")
			f := frame(id, body)
			f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: 4}
			f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: 10, BodyCrc32: crc32.ChecksumIEEE(body)}
			fa.send(f)
		}},
		{name: "bad chunk checksum", inFlight: true, wantStatus: http.StatusBadGateway, act: func(t *testing.T, fa *fakeAgent, id uint64) {
			f := frame(id, []byte("abc"))
			f.GetScrapeResult().ChunkCrc32++
			f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: 3}
			f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: 3, BodyCrc32: crc32.ChecksumIEEE([]byte("abc"))}
			fa.send(f)
		}},
		{name: "absurd status code", inFlight: true, wantStatus: http.StatusBadGateway, act: func(t *testing.T, fa *fakeAgent, id uint64) {
			f := frame(id, nil)
			f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 42, ContentLength: 0}
			f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{}
			fa.send(f)
		}},
		{name: "duplicate end", inFlight: true, wantStatus: http.StatusOK, act: func(t *testing.T, fa *fakeAgent, id uint64) {
			f := frame(id, ok)
			f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: int64(len(ok))}
			f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(ok)), BodyCrc32: crc32.ChecksumIEEE(ok)}
			fa.send(f)
			fa.send(f)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := runProxy(t, func(o *server.Options) { o.MaxMessageSize = 256 << 10 })
			good := register(t, p, "good", false, "good")
			bad := register(t, p, "bad", false, "bad")
			var res <-chan scrapeResult
			var id uint64
			if tt.inFlight {
				res = scrapeAsync(p, "/bad", nil)
				id = bad.nextScrape().GetScrapeId()
			}
			tt.act(t, bad, id)
			if res != nil {
				if r := wait(t, res); r.status != tt.wantStatus && !(r.err != nil && tt.wantStatus == 0) {
					t.Fatalf("scrape of the bad agent: %d %q %v, want %d", r.status, r.body, r.err, tt.wantStatus)
				}
			}
			if tt.wantCode != 0 {
				for {
					if _, err := bad.recv(); err != nil {
						if connect.CodeOf(err) != tt.wantCode {
							t.Fatalf("session ended with %v, want %v", err, tt.wantCode)
						}
						break
					}
				}
			}
			// The healthy agent is unaffected.
			gr := scrapeAsync(p, "/good", nil)
			sr := good.nextScrape()
			f := frame(sr.GetScrapeId(), ok)
			f.GetScrapeResult().Header = &promproxyv1.ScrapeHeader{StatusCode: 200, ContentLength: int64(len(ok))}
			f.GetScrapeResult().Trailer = &promproxyv1.ScrapeTrailer{BodyLength: int64(len(ok)), BodyCrc32: crc32.ChecksumIEEE(ok)}
			good.send(f)
			if r := wait(t, gr); r.status != 200 || !bytes.Equal([]byte(r.body), ok) {
				t.Fatalf("healthy agent's scrape: %d %q", r.status, r.body)
			}
		})
	}
}
