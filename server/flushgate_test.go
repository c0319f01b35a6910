package server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/internal/transport"
)

// flushCounter counts the flushes that reach the connection and can hold
// one of them, so that a test can queue messages behind it.
type flushCounter struct {
	http.ResponseWriter
	flushes *atomic.Int32
	gate    func() // called before each flush
}

func (f *flushCounter) Flush() {
	f.gate()
	f.flushes.Add(1)
	f.ResponseWriter.(http.Flusher).Flush()
}

func (f *flushCounter) Unwrap() http.ResponseWriter { return f.ResponseWriter }

func TestQueuedMessagesLeaveInOneFlush(t *testing.T) {
	opts := DefaultOptions()
	opts.ListenAddr, opts.AgentListenAddr = "127.0.0.1:0", "127.0.0.1:0"
	opts.Logger = testlog.Logger(t)
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.closeListeners() // this test serves the session handler itself

	var flushes atomic.Int32
	var holdNext atomic.Bool
	held := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	mux := http.NewServeMux()
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(p.sessions))
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gate := func() {
			if holdNext.Load() {
				once.Do(func() {
					close(held)
					<-release
				})
			}
		}
		withFlushGate(mux).ServeHTTP(&flushCounter{ResponseWriter: w, flushes: &flushes, gate: gate}, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := transport.NewServer(counted, nil, transport.DefaultKeepalive)
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		p.sessions.handlers.Wait()
		p.sessions.receivers.Wait()
	}()

	hc := &http.Client{Transport: transport.NewClientTransport(nil, transport.DefaultKeepalive)}
	defer hc.CloseIdleConnections()
	client := promproxyv1connect.NewProxyServiceClient(hc, "http://"+ln.Addr().String(), connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
	}()
	if err := stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{AgentName: "a"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Receive(); err != nil {
		t.Fatal(err)
	}
	agents := p.reg.allAgents()
	if len(agents) != 1 {
		t.Fatalf("%d agents registered, want 1", len(agents))
	}
	c := agents[0]

	// The first message's flush is held; the rest queue up behind it.
	const burst = 20
	before := flushes.Load()
	holdNext.Store(true)
	hb := func() *promproxyv1.SessionResponse {
		return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}}
	}
	if !c.trySend(hb()) {
		t.Fatal("send queue full")
	}
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the sender never flushed the first message")
	}
	for range burst {
		if !c.trySend(hb()) {
			t.Fatal("send queue full")
		}
	}
	close(release)
	for i := range burst + 1 {
		m, err := stream.Receive()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.GetHeartbeat() == nil {
			t.Fatalf("message %d is %T, want a heartbeat", i, m.GetMsg())
		}
	}
	if got := flushes.Load() - before; got != 2 {
		t.Fatalf("%d messages took %d flushes, want 2: one for the first and one for the %d queued behind it", burst+1, got, burst)
	}
}
