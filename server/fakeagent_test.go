package server_test

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/server"
)

// runProxy starts a proxy on loopback ports and stops it when the test ends.
func runProxy(t *testing.T, mutate func(*server.Options)) *server.Proxy {
	t.Helper()
	opts := server.DefaultOptions()
	opts.ListenAddr, opts.AgentListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	opts.Logger = testlog.Logger(t)
	opts.Registerer = prometheus.NewRegistry()
	if mutate != nil {
		mutate(&opts)
	}
	p, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// fakeAgent speaks the protocol directly, so tests control every frame.
type fakeAgent struct {
	t      *testing.T
	stream *connect.BidiStreamForClientSimple[promproxyv1.SessionRequest, promproxyv1.SessionResponse]
	cancel context.CancelFunc
	id     string
}

func dialAgent(t *testing.T, p *server.Proxy) (*fakeAgent, error) {
	t.Helper()
	hc := &http.Client{Transport: transport.NewClientTransport(nil, transport.DefaultKeepalive)}
	c := promproxyv1connect.NewProxyServiceClient(hc, "http://"+p.AgentAddr().String(), connect.WithGRPC())
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Session(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	fa := &fakeAgent{t: t, stream: stream, cancel: cancel}
	t.Cleanup(fa.close)
	return fa, nil
}

func (fa *fakeAgent) close() {
	fa.cancel()
	_ = fa.stream.CloseRequest()
	_ = fa.stream.CloseResponse()
}

func (fa *fakeAgent) send(m *promproxyv1.SessionRequest) {
	fa.t.Helper()
	if err := fa.stream.Send(m); err != nil {
		fa.t.Fatalf("send: %v", err)
	}
}

// recv receives the next message, failing the test after a bound.
func (fa *fakeAgent) recv() (*promproxyv1.SessionResponse, error) {
	type r struct {
		m   *promproxyv1.SessionResponse
		err error
	}
	ch := make(chan r, 1)
	go func() {
		m, err := fa.stream.Receive()
		ch <- r{m, err}
	}()
	select {
	case x := <-ch:
		return x.m, x.err
	case <-time.After(10 * time.Second):
		fa.close()
		return nil, errors.New("no message from the proxy within 10s")
	}
}

// register opens the session and registers paths, returning once the proxy
// accepted every one.
func register(t *testing.T, p *server.Proxy, name string, consolidated bool, paths ...string) *fakeAgent {
	t.Helper()
	fa, err := dialAgent(t, p)
	if err != nil {
		t.Fatal(err)
	}
	fa.send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{AgentName: name, Consolidated: consolidated}}})
	m, err := fa.recv()
	if err != nil {
		t.Fatalf("registration: %v", err)
	}
	fa.id = m.GetRegisterAgentResult().GetAgentId()
	for _, path := range paths {
		fa.send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterPath{RegisterPath: &promproxyv1.RegisterPath{Path: path}}})
		m, err := fa.recv()
		if err != nil {
			t.Fatal(err)
		}
		if r := m.GetRegisterPathResult(); !r.GetAccepted() {
			t.Fatalf("path %q refused: %s", path, r.GetReason())
		}
	}
	return fa
}

// nextScrape waits for a scrape request, skipping other messages.
func (fa *fakeAgent) nextScrape() *promproxyv1.ScrapeRequest {
	fa.t.Helper()
	for {
		m, err := fa.recv()
		if err != nil {
			fa.t.Fatalf("waiting for a scrape request: %v", err)
		}
		if r := m.GetScrapeRequest(); r != nil {
			return r
		}
	}
}

func frame(id uint64, chunk []byte) *promproxyv1.SessionRequest {
	return &promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_ScrapeResult{ScrapeResult: &promproxyv1.ScrapeResult{
		ScrapeId: id, Chunk: chunk, ChunkCrc32: crc32.ChecksumIEEE(chunk),
	}}}
}

type scrapeResult struct {
	status int
	body   string
	err    error
	header http.Header
}

// scrapeAsync scrapes path in the background.
func scrapeAsync(p *server.Proxy, path string, hdr http.Header) <-chan scrapeResult {
	ch := make(chan scrapeResult, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.Addr().String()+path, nil)
		for k, v := range hdr {
			req.Header[k] = v
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			ch <- scrapeResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ch <- scrapeResult{status: resp.StatusCode, body: string(b), err: err, header: resp.Header}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan scrapeResult) scrapeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("scrape did not finish within 15s")
		return scrapeResult{}
	}
}
