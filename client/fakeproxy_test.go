package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/internal/transport"
)

// fakeProxy accepts agent sessions and hands each one to the test.
type fakeProxy struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
	addr     string
	sessions chan *fakeSession
}

// fakeSession is the proxy end of one agent session, driven by the test.
type fakeSession struct {
	t      *testing.T
	stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]
	end    chan error
	msgs   chan *promproxyv1.SessionRequest
	rxErr  chan error

	// mu orders the test's sends against the handler's return: a stream
	// must not be used once its handler has returned.
	mu     sync.Mutex
	closed bool
}

func (f *fakeProxy) Session(ctx context.Context, stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	s := &fakeSession{stream: stream, end: make(chan error, 1), msgs: make(chan *promproxyv1.SessionRequest, 1024), rxErr: make(chan error, 1)}
	rxDone := make(chan struct{})
	go func() {
		defer close(rxDone)
		for {
			m, err := stream.Receive()
			if err != nil {
				s.rxErr <- err
				return
			}
			s.msgs <- m
		}
	}()
	select {
	case f.sessions <- s:
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	select {
	case err = <-s.end:
	case <-rxDone: // the agent closed its side
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return err
}

func startFakeProxy(t *testing.T) *fakeProxy {
	t.Helper()
	return startFakeProxyWith(t, nil, nil)
}

// startFakeProxyWith is startFakeProxy on a listener that wrapLn may
// observe, with a handler that wrapH may change; nil leaves either as it is.
func startFakeProxyWith(t *testing.T, wrapLn func(net.Listener) net.Listener, wrapH func(http.Handler) http.Handler) *fakeProxy {
	t.Helper()
	f := &fakeProxy{sessions: make(chan *fakeSession, 16)}
	mux := http.NewServeMux()
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(f))
	var h http.Handler = mux
	if wrapH != nil {
		h = wrapH(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if wrapLn != nil {
		ln = wrapLn(ln)
	}
	srv := transport.NewServer(h, nil, transport.DefaultKeepalive)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.addr = ln.Addr().String()
	return f
}

// accept waits for the next session and completes its registration.
func (f *fakeProxy) accept(t *testing.T) *fakeSession {
	t.Helper()
	select {
	case s := <-f.sessions:
		s.t = t
		reg := s.recv().GetRegisterAgent()
		if reg == nil {
			t.Fatal("first message is not RegisterAgent")
		}
		s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{RegisterAgentResult: &promproxyv1.RegisterAgentResult{AgentId: "id-1"}}})
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no agent session within 10s")
		return nil
	}
}

func (s *fakeSession) send(m *promproxyv1.SessionResponse) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.t.Fatal("send on a session that has ended")
	}
	if err := s.stream.Send(m); err != nil {
		s.t.Fatalf("send: %v", err)
	}
}

var errSessionClosed = errors.New("session closed")

func (s *fakeSession) recvErr() (*promproxyv1.SessionRequest, error) {
	select {
	case m := <-s.msgs:
		return m, nil
	case err := <-s.rxErr:
		s.rxErr <- err
		// Messages received before the error are already queued.
		select {
		case m := <-s.msgs:
			return m, nil
		default:
		}
		return nil, errSessionClosed
	case <-time.After(10 * time.Second):
		return nil, errors.New("no message from the agent within 10s")
	}
}

func (s *fakeSession) recv() *promproxyv1.SessionRequest {
	s.t.Helper()
	m, err := s.recvErr()
	if err != nil {
		s.t.Fatal(err)
	}
	return m
}

// acceptPaths answers every RegisterPath until n paths are accepted.
func (s *fakeSession) acceptPaths(n int) []string {
	s.t.Helper()
	var paths []string
	for len(paths) < n {
		m := s.recv()
		if r := m.GetRegisterPath(); r != nil {
			paths = append(paths, r.GetPath())
			s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterPathResult{RegisterPathResult: &promproxyv1.RegisterPathResult{Path: r.GetPath(), Accepted: true}}})
		}
	}
	return paths
}

// result collects the frames of one scrape until its trailer.
func (s *fakeSession) result(id uint64) (*promproxyv1.ScrapeHeader, []byte, *promproxyv1.ScrapeTrailer, int) {
	s.t.Helper()
	var hdr *promproxyv1.ScrapeHeader
	var body []byte
	frames := 0
	for {
		r := s.recv().GetScrapeResult()
		if r == nil || r.GetScrapeId() != id {
			continue
		}
		frames++
		if r.GetHeader() != nil {
			hdr = r.GetHeader()
		}
		body = append(body, r.GetChunk()...)
		if r.GetTrailer() != nil {
			return hdr, body, r.GetTrailer(), frames
		}
	}
}

func scrapeReq(id uint64, path string, credit uint32) *promproxyv1.SessionResponse {
	return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeRequest{ScrapeRequest: &promproxyv1.ScrapeRequest{
		ScrapeId: id, Path: path, InitialCredit: credit, AcceptGzip: true,
	}}}
}

// startAgent runs an agent until the test ends.
func startAgent(t *testing.T, proxies []string, paths []client.PathConfig, mutate func(*client.Options)) *client.Agent {
	t.Helper()
	opts := client.DefaultOptions()
	opts.ProxyURLs = proxies
	opts.AgentName = "test"
	opts.Paths = paths
	opts.Logger = testlog.Logger(t)
	opts.Registerer = prometheus.NewRegistry()
	opts.Backoff.Initial, opts.Backoff.Max = 10*time.Millisecond, 100*time.Millisecond
	if mutate != nil {
		mutate(&opts)
	}
	a, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}
