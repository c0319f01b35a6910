package client_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

// welcomeProxy accepts every session and keeps it until the agent leaves.
type welcomeProxy struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
}

func (welcomeProxy) Session(ctx context.Context, s *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	if _, err := s.Receive(); err != nil {
		return nil
	}
	if err := s.Send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{
		RegisterAgentResult: &promproxyv1.RegisterAgentResult{AgentId: "a"},
	}}); err != nil {
		return nil
	}
	for {
		if _, err := s.Receive(); err != nil {
			return nil
		}
	}
}

// A stopped agent must leave no connection open on the proxy: a connection
// left behind keeps goroutines on both ends until an idle timeout, and an
// agent restarted in a loop would pile them up.
func TestStoppedAgentClosesItsConnections(t *testing.T) {
	t.Parallel()
	var open atomic.Int64
	mux := http.NewServeMux()
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(welcomeProxy{}))
	srv := transport.NewServer(mux, nil, transport.DefaultKeepalive)
	srv.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	for i := range 20 {
		opts := client.DefaultOptions()
		opts.ProxyURLs, opts.AgentName = []string{ln.Addr().String()}, "restarted"
		opts.Logger = slog.New(slog.DiscardHandler)
		a, err := client.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		if !waitCond(5*time.Second, a.Connected) {
			t.Fatalf("run %d: the agent never connected", i)
		}
		if i%2 == 0 {
			_ = a.Close()
		} else {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_ = a.Shutdown(ctx)
			cancel()
		}
	}
	if !waitCond(2*time.Second, func() bool { return open.Load() == 0 }) {
		t.Fatalf("%d connections still open on the proxy after every agent stopped", open.Load())
	}
}
