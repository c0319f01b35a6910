package client_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

// hostileProxy speaks the protocol directly and hands each session to the
// test, which decides every message the "proxy" sends.
type hostileProxy struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
	sessions chan *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]
	done     chan struct{}
}

func (h *hostileProxy) Session(ctx context.Context, s *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	select {
	case h.sessions <- s:
	case <-ctx.Done():
		return nil
	}
	select {
	case <-h.done:
	case <-ctx.Done():
	}
	return nil
}

func startHostileProxy(t *testing.T) (addr string, h *hostileProxy) {
	t.Helper()
	h = &hostileProxy{sessions: make(chan *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]), done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(h))
	srv := transport.NewServer(mux, nil, transport.DefaultKeepalive)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		close(h.done)
		_ = srv.Close()
		<-served
	})
	return ln.Addr().String(), h
}

// hitRecorder is a target that records every request it receives.
type hitRecorder struct {
	mu   sync.Mutex
	hits []*http.Request
}

func (r *hitRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.hits = append(r.hits, req)
	r.mu.Unlock()
	_, _ = w.Write([]byte("up 1\n"))
}

func (r *hitRecorder) all() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.hits...)
}

func recv(t *testing.T, s *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) *promproxyv1.SessionRequest {
	t.Helper()
	ch := make(chan *promproxyv1.SessionRequest, 1)
	go func() {
		m, err := s.Receive()
		if err != nil {
			t.Errorf("receive from agent: %v", err)
		}
		ch <- m
	}()
	select {
	case m := <-ch:
		if m == nil {
			t.FailNow()
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message from the agent within 10s")
		return nil
	}
}

// TestHostileProxyCannotRedirectAgent drives a real agent from a proxy that
// asks for paths the agent does not serve, URLs in place of paths, and
// queries crafted to change the target's host. The agent must fetch only
// its configured target, at its configured path.
func TestHostileProxyCannotRedirectAgent(t *testing.T) {
	t.Parallel()
	legit, evil := &hitRecorder{}, &hitRecorder{}
	legitSrv, evilSrv := httptest.NewServer(legit), httptest.NewServer(evil)
	t.Cleanup(legitSrv.Close)
	t.Cleanup(evilSrv.Close)
	evilHost := strings.TrimPrefix(evilSrv.URL, "http://")

	addr, hp := startHostileProxy(t)
	opts := client.DefaultOptions()
	opts.ProxyURLs = []string{addr}
	opts.AgentName = "victim"
	opts.Paths = []client.PathConfig{{Path: "app", URL: legitSrv.URL + "/metrics?module=node"}}
	opts.Registerer = prometheus.NewRegistry()
	a, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })

	var s *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]
	select {
	case s = <-hp.sessions:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent did not connect")
	}
	if recv(t, s).GetRegisterAgent() == nil {
		t.Fatal("first message is not RegisterAgent")
	}
	if err := s.Send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{RegisterAgentResult: &promproxyv1.RegisterAgentResult{AgentId: "x"}}}); err != nil {
		t.Fatal(err)
	}

	requests := []struct {
		name    string
		path    string
		query   string
		fetched bool // the legit target is fetched
	}{
		{name: "unknown path", path: "admin"},
		{name: "URL as path", path: evilSrv.URL + "/metrics"},
		{name: "host as path", path: evilHost},
		{name: "dot dot", path: "../app"},
		{name: "traversal", path: "app/../../" + evilHost},
		{name: "empty path", path: ""},
		{name: "userinfo trick in query", path: "app", query: "x=1@" + evilHost, fetched: true},
		{name: "fragment trick in query", path: "app", query: "#@" + evilHost + "/", fetched: true},
		{name: "path trick in query", path: "app", query: "a=/../../x&b=//" + evilHost, fetched: true},
		{name: "header injection in query", path: "app", query: "a=1 HTTP/1.1\r\nHost: " + evilHost + "\r\n\r\nGET /"},
		{name: "override of a configured parameter", path: "app", query: "module=evil&target=" + evilHost, fetched: true},
		{name: "encoded override of a configured parameter", path: "app", query: "modul%65=evil", fetched: true},
		{name: "configured path", path: "app", fetched: true},
	}
	failures := map[uint64]string{}
	pending := map[uint64]bool{}
	for i, r := range requests {
		id := uint64(i + 1)
		pending[id] = true
		if err := s.Send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_ScrapeRequest{ScrapeRequest: &promproxyv1.ScrapeRequest{
			ScrapeId: id, Path: r.path, Query: r.query, InitialCredit: 16,
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	for len(pending) > 0 {
		m := recv(t, s)
		res := m.GetScrapeResult()
		if res == nil || res.GetTrailer() == nil {
			continue
		}
		delete(pending, res.GetScrapeId())
		failures[res.GetScrapeId()] = res.GetTrailer().GetFailure().String()
	}
	wantFetches := 0
	for i, r := range requests {
		f := failures[uint64(i+1)]
		switch {
		case r.fetched:
			wantFetches++
			if f != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED.String() {
				t.Errorf("%s: %s, want a normal answer from the configured target", r.name, f)
			}
		case r.path != "app":
			if f != promproxyv1.ScrapeFailure_SCRAPE_FAILURE_PATH_NOT_FOUND.String() {
				t.Errorf("%s: %s, want PATH_NOT_FOUND", r.name, f)
			}
		default:
			if f == promproxyv1.ScrapeFailure_SCRAPE_FAILURE_UNSPECIFIED.String() {
				t.Errorf("%s: answered normally, want a failure", r.name)
			}
		}
	}
	if n := len(evil.all()); n != 0 {
		t.Fatalf("the agent sent %d requests to a host outside its configuration", n)
	}
	hits := legit.all()
	if len(hits) != wantFetches {
		t.Errorf("configured target fetched %d times, want %d", len(hits), wantFetches)
	}
	for _, h := range hits {
		if h.URL.Path != "/metrics" || h.Host != strings.TrimPrefix(legitSrv.URL, "http://") || len(h.URL.Query()["module"]) != 1 || h.URL.Query().Get("module") != "node" {
			t.Errorf("configured target fetched as host %q path %q query %q", h.Host, h.URL.Path, h.URL.RawQuery)
		}
	}
}
