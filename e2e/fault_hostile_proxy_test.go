package e2e

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

// hostileProxy accepts agent sessions and hands each to the test, which
// plays the proxy frame by frame.
type hostileProxy struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
	t        testing.TB // owns the sessions: they end when it does
	addr     string
	sessions chan *hostileSession
}

// hostileSession is the proxy's end of one agent session. A goroutine
// receives into msgs; the handler goroutine itself sends what the test
// queues on out, so that no send can race with the handler's return.
type hostileSession struct {
	t     testing.TB
	msgs  chan *promproxyv1.SessionRequest
	out   chan outMsg
	ended chan struct{} // the agent's side of the stream ended
	quit  chan struct{} // closed by the test to end the session
	done  chan struct{} // the handler returned
}

type outMsg struct {
	msg *promproxyv1.SessionResponse
	err chan error
}

func (h *hostileProxy) Session(ctx context.Context, stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	s := &hostileSession{msgs: make(chan *promproxyv1.SessionRequest, 4096), out: make(chan outMsg),
		ended: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
	defer close(s.done)
	go func() {
		defer close(s.ended)
		for {
			m, err := stream.Receive()
			if err != nil {
				return
			}
			select {
			case s.msgs <- m:
			default: // the test is not reading: drop, as a broken proxy would
			}
		}
	}()
	select {
	case h.sessions <- s:
	case <-ctx.Done():
		return nil
	}
	for {
		select {
		case o := <-s.out:
			o.err <- stream.Send(o.msg)
		case <-s.ended:
			return nil
		case <-s.quit:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func startHostileProxy(t testing.TB) *hostileProxy {
	t.Helper()
	h := &hostileProxy{t: t, sessions: make(chan *hostileSession, 16)}
	mux := http.NewServeMux()
	// No message size limit on this side: the test must be able to send
	// more than the agent accepts.
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(h))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(mux, nil, transport.DefaultKeepalive)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	h.addr = ln.Addr().String()
	return h
}

// accept waits for the next session, welcomes it, and accepts its paths.
func (h *hostileProxy) accept(t testing.TB, paths int) *hostileSession {
	t.Helper()
	var s *hostileSession
	select {
	case s = <-h.sessions:
	case <-time.After(15 * time.Second):
		t.Fatal("no agent session within 15s")
	}
	s.t = t
	// Ending a session from a subtest's cleanup would race with the test
	// still sending on it; sessions end with the test that owns the proxy.
	h.t.Cleanup(func() { close(s.quit) })
	if s.recv().GetRegisterAgent() == nil {
		t.Fatal("first message is not RegisterAgent")
	}
	s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{RegisterAgentResult: &promproxyv1.RegisterAgentResult{AgentId: "hostile"}}})
	for range paths {
		r := s.recv().GetRegisterPath()
		if r == nil {
			t.Fatal("expected RegisterPath")
		}
		s.send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterPathResult{RegisterPathResult: &promproxyv1.RegisterPathResult{Path: r.GetPath(), Accepted: true}}})
	}
	return s
}

func (s *hostileSession) send(m *promproxyv1.SessionResponse) {
	s.t.Helper()
	o := outMsg{msg: m, err: make(chan error, 1)}
	select {
	case s.out <- o:
	case <-s.done:
		s.t.Fatal("send to the agent: the session has ended")
	}
	if err := <-o.err; err != nil {
		s.t.Fatalf("send to the agent: %v", err)
	}
}

func (s *hostileSession) recv() *promproxyv1.SessionRequest {
	s.t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case <-s.ended:
		s.t.Fatal("the agent ended the session")
	case <-time.After(15 * time.Second):
		s.t.Fatal("no message from the agent within 15s")
	}
	return nil
}

// trailers collects the trailers of n scrapes, skipping other frames.
func (s *hostileSession) trailers(n int) map[uint64]*promproxyv1.ScrapeTrailer {
	s.t.Helper()
	got := map[uint64]*promproxyv1.ScrapeTrailer{}
	for len(got) < n {
		if r := s.recv().GetScrapeResult(); r.GetTrailer() != nil {
			got[r.GetScrapeId()] = r.GetTrailer()
		}
	}
	return got
}

func hostileScrape(id uint64, path string, credit uint32, timeout *durationpb.Duration) *promproxyv1.SessionResponse {
	return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeRequest{ScrapeRequest: &promproxyv1.ScrapeRequest{
		ScrapeId: id, Path: path, InitialCredit: credit, AcceptGzip: true, Timeout: timeout,
	}}}
}

// guardedTarget records every request and how many ran at once, and holds
// each until release is closed or the agent gives up.
type guardedTarget struct {
	url     string
	release chan struct{}
	mu      sync.Mutex
	reqs    []*http.Request
	now     atomic.Int64
	most    atomic.Int64
}

func newGuardedTarget(t testing.TB) *guardedTarget {
	g := &guardedTarget{release: make(chan struct{})}
	srv := newTarget(t, func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.reqs = append(g.reqs, r.Clone(context.Background()))
		g.mu.Unlock()
		n := g.now.Add(1)
		defer g.now.Add(-1)
		for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
		}
		select {
		case <-g.release:
			_, _ = w.Write([]byte("ok 1\n"))
		case <-r.Context().Done():
		}
	})
	g.url = srv.URL + "/metrics"
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	return g
}

// TestHostileProxyFlood sends the agent far more scrapes than it may run.
// It must answer the excess "busy" at once, never run more target fetches
// than its per-path limit, and keep its session.
func TestHostileProxyFlood(t *testing.T) {
	t.Parallel()
	g := newGuardedTarget(t)
	hp := startHostileProxy(t)
	const slots, inFlight, flood = 2, 20, 500
	a := startAgentAt(t, hp.addr, []client.PathConfig{{Path: "p", URL: g.url}}, func(o *client.Options) {
		o.MaxConcurrentClients, o.MaxInFlightScrapes = slots, inFlight
		o.ScrapeTimeout = 30 * time.Second
	})
	s := hp.accept(t, 1)
	start := time.Now()
	for id := uint64(1); id <= flood; id++ {
		s.send(hostileScrape(id, "p", 4, nil))
	}
	busy := s.trailers(flood - inFlight)
	for id, tr := range busy {
		if tr.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_BUSY {
			t.Fatalf("scrape %d: %v %q, want BUSY", id, tr.GetFailure(), tr.GetMessage())
		}
	}
	t.Logf("%d excess scrapes refused as busy within %v", len(busy), time.Since(start).Round(time.Millisecond))
	waitFor(t, "the agent to fill its fetch slots", 10*time.Second, func() bool { return g.now.Load() == slots })
	close(g.release)
	done := s.trailers(inFlight)
	for id, tr := range done {
		if tr.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
			t.Errorf("accepted scrape %d: %v %q", id, tr.GetFailure(), tr.GetMessage())
		}
	}
	if m := g.most.Load(); m > slots {
		t.Errorf("the target saw %d fetches at once, above the agent's %d", m, slots)
	}
	if !a.Connected() {
		t.Error("the agent dropped its session under the flood")
	}
}

// TestHostileProxyDeadlines sends absurd scrape deadlines: the agent must
// clamp each to its own scrape timeout, and a tiny one must fail at once.
func TestHostileProxyDeadlines(t *testing.T) {
	t.Parallel()
	g := newGuardedTarget(t)
	hp := startHostileProxy(t)
	const own = 2 * time.Second
	startAgentAt(t, hp.addr, []client.PathConfig{{Path: "p", URL: g.url}}, func(o *client.Options) {
		o.ScrapeTimeout, o.MaxConcurrentClients = own, 16
	})
	s := hp.accept(t, 1)
	tests := []struct {
		name    string
		timeout *durationpb.Duration
		max     time.Duration
	}{
		{name: "one nanosecond", timeout: durationpb.New(time.Nanosecond), max: own / 2},
		{name: "negative", timeout: durationpb.New(-time.Hour), max: own + time.Second},
		{name: "a century", timeout: durationpb.New(100 * 365 * 24 * time.Hour), max: own + time.Second},
		{name: "out of range", timeout: &durationpb.Duration{Seconds: 1 << 62, Nanos: -5}, max: own + time.Second},
		{name: "none", timeout: nil, max: own + time.Second},
	}
	start := time.Now()
	for i, tt := range tests {
		s.send(hostileScrape(uint64(i+1), "p", 4, tt.timeout))
	}
	got := map[uint64]time.Duration{}
	trs := map[uint64]*promproxyv1.ScrapeTrailer{}
	for len(got) < len(tests) {
		if r := s.recv().GetScrapeResult(); r.GetTrailer() != nil {
			got[r.GetScrapeId()] = time.Since(start)
			trs[r.GetScrapeId()] = r.GetTrailer()
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := uint64(i + 1)
			if f := trs[id].GetFailure(); f != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_TIMEOUT {
				t.Errorf("failure %v %q, want UPSTREAM_TIMEOUT", f, trs[id].GetMessage())
			}
			if got[id] > tt.max {
				t.Errorf("answered after %v, want within %v", got[id], tt.max)
			}
		})
	}
}

// TestHostileProxyGarbage sends the agent messages that make no sense on an
// established session. The agent must ignore or refuse each one, keep the
// session, and never send its targets a request other than the configured
// one.
func TestHostileProxyGarbage(t *testing.T) {
	t.Parallel()
	g := newGuardedTarget(t)
	close(g.release)
	hp := startHostileProxy(t)
	a := startAgentAt(t, hp.addr, []client.PathConfig{{Path: "p", URL: g.url + "?fixed=1"}}, nil)
	s := hp.accept(t, 1)
	resp := func(m any) *promproxyv1.SessionResponse {
		switch m := m.(type) {
		case *promproxyv1.ScrapeCredit:
			return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCredit{ScrapeCredit: m}}
		case *promproxyv1.ScrapeCancel:
			return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeCancel{ScrapeCancel: m}}
		case *promproxyv1.PathDisplaced:
			return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_PathDisplaced{PathDisplaced: m}}
		case *promproxyv1.RegisterPathResult:
			return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterPathResult{RegisterPathResult: m}}
		case *promproxyv1.UnregisterPathResult:
			return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_UnregisterPathResult{UnregisterPathResult: m}}
		}
		return &promproxyv1.SessionResponse{}
	}
	// Messages that concern nothing the agent has: ignored.
	for _, m := range []any{
		nil,
		&promproxyv1.ScrapeCredit{ScrapeId: 999, Frames: 1 << 31},
		&promproxyv1.ScrapeCancel{ScrapeId: 999},
		&promproxyv1.PathDisplaced{Path: "never-registered"},
		&promproxyv1.RegisterPathResult{Path: "never-asked", Accepted: true},
		&promproxyv1.UnregisterPathResult{Path: "never-asked", Removed: true},
	} {
		s.send(resp(m))
	}
	// Scrape requests that must be refused or confined to the target.
	type req struct {
		path, query string
		credit      uint32
		want        promproxyv1.ScrapeFailure
	}
	reqs := []req{
		{path: "../../etc/passwd", credit: 4, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND},
		{path: "http://169.254.169.254/", credit: 4, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND},
		{path: "", credit: 4, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND},
		{path: "p", credit: 0, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_INVALID_REQUEST},
		{path: "p", query: "a=1\r\nHost: evil.example\r\n", credit: 4, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UPSTREAM_ERROR},
		{path: "p", query: "#@evil.example/", credit: 4},
		{path: "p", query: "x=/../../admin&y=@evil.example", credit: 4},
		{path: "p", query: strings.Repeat("q", 1<<20), credit: 4, want: promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED},
	}
	for i, r := range reqs {
		m := hostileScrape(uint64(100+i), r.path, r.credit, nil)
		m.GetScrapeRequest().Query = r.query
		s.send(m)
	}
	trs := s.trailers(len(reqs))
	for i, r := range reqs {
		tr := trs[uint64(100+i)]
		if i == len(reqs)-1 {
			// A megabyte of query: the target may refuse it, but the
			// agent must answer.
			continue
		}
		if tr.GetFailure() != r.want {
			t.Errorf("scrape of %q?%.40q: %v %q, want %v", r.path, r.query, tr.GetFailure(), tr.GetMessage(), r.want)
		}
	}
	target, _ := url.Parse(g.url)
	g.mu.Lock()
	for _, r := range g.reqs {
		if r.Method != http.MethodGet || r.Host != target.Host || r.URL.Path != target.Path || r.URL.Query().Get("fixed") != "1" {
			t.Errorf("the target got %s %s%s?%.60s: the proxy reached beyond the configured URL", r.Method, r.Host, r.URL.Path, r.URL.RawQuery)
		}
	}
	g.mu.Unlock()
	if !a.Connected() {
		t.Fatal("the agent dropped its session over garbage it should have ignored")
	}
	// The session still works.
	s.send(hostileScrape(1000, "p", 4, nil))
	if tr := s.trailers(1)[1000]; tr.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
		t.Errorf("scrape after the garbage: %v %q", tr.GetFailure(), tr.GetMessage())
	}
}

// TestHostileProxyBreaksProtocol sends what must end the session: a second
// welcome and a message past the agent's size limit. Each time the agent
// must drop the session, reconnect and serve again.
func TestHostileProxyBreaksProtocol(t *testing.T) {
	t.Parallel()
	g := newGuardedTarget(t)
	close(g.release)
	hp := startHostileProxy(t)
	startAgentAt(t, hp.addr, []client.PathConfig{{Path: "p", URL: g.url}}, func(o *client.Options) {
		o.Backoff.Initial, o.Backoff.Max = 50*time.Millisecond, 200*time.Millisecond
	})
	tests := []struct {
		name string
		msg  *promproxyv1.SessionResponse
	}{
		{name: "second welcome", msg: &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{RegisterAgentResult: &promproxyv1.RegisterAgentResult{AgentId: "again"}}}},
		{name: "oversized message", msg: func() *promproxyv1.SessionResponse {
			m := hostileScrape(7, "p", 4, nil)
			m.GetScrapeRequest().Authorization = strings.Repeat("A", 9<<20)
			return m
		}()},
	}
	s := hp.accept(t, 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			s.send(tt.msg)
			select {
			case <-s.ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the agent kept a session that broke the protocol")
			}
			s = hp.accept(t, 1)
			s.send(hostileScrape(1, "p", 4, nil))
			if tr := s.trailers(1)[1]; tr.GetFailure() != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED {
				t.Errorf("scrape on the new session: %v %q", tr.GetFailure(), tr.GetMessage())
			}
		})
	}
}
