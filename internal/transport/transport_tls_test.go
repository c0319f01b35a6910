package transport_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/tlsconfig"
	"github.com/promproxy/promproxy/internal/transport"
)

// echoService answers every heartbeat with a heartbeat, so a test can drive
// both directions of a bidi stream.
type echoService struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
}

func (echoService) Session(_ context.Context, s *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	for {
		if _, err := s.Receive(); err != nil {
			return nil
		}
		if err := s.Send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}}); err != nil {
			return err
		}
	}
}

// startTLSServer serves echoService over TLS (mutual when mtls) and records
// the HTTP version of every request.
func startTLSServer(t *testing.T, s *testcerts.Set, mtls bool, alpn ...string) (addr string, proto *atomic.Value) {
	t.Helper()
	files := tlsconfig.Files{CertFile: s.ServerCert, KeyFile: s.ServerKey}
	if mtls {
		files.CAFile = s.CAFile
	}
	cfg, err := tlsconfig.NewServer(files, alpn, nil)
	if err != nil {
		t.Fatal(err)
	}
	proto = &atomic.Value{}
	mux := http.NewServeMux()
	mux.Handle(promproxyv1connect.NewProxyServiceHandler(echoService{}))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		mux.ServeHTTP(w, r)
	})
	srv := transport.NewServer(h, cfg, transport.DefaultKeepalive)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr().String(), proto
}

func TestBidiStreamOverTLS(t *testing.T) {
	t.Parallel()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		mtls  bool
		files tlsconfig.Files
	}{
		{name: "tls", files: tlsconfig.Files{CAFile: s.CAFile}},
		{name: "mutual tls", mtls: true, files: tlsconfig.Files{CertFile: s.ClientCert, KeyFile: s.ClientKey, CAFile: s.CAFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, proto := startTLSServer(t, s, tt.mtls, "h2", "http/1.1")
			cl, err := tlsconfig.NewClient(tt.files, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := transport.NewClientTransport(cl.Config("127.0.0.1"), transport.DefaultKeepalive)
			t.Cleanup(tr.CloseIdleConnections)
			c := promproxyv1connect.NewProxyServiceClient(&http.Client{Transport: tr}, "https://"+addr, connect.WithGRPC())
			stream, err := c.Session(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer stream.CloseResponse()
			// Several round trips on one stream: each message from the
			// client is answered while the stream stays open, which
			// HTTP/1.1 cannot do.
			for i := range 3 {
				if err := stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}}); err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				m, err := stream.Receive()
				if err != nil {
					t.Fatalf("receive %d: %v", i, err)
				}
				if m.GetHeartbeat() == nil {
					t.Fatalf("receive %d: %v", i, m)
				}
			}
			if err := stream.CloseRequest(); err != nil {
				t.Fatal(err)
			}
			if got := proto.Load(); got != "HTTP/2.0" {
				t.Fatalf("server saw %v, want HTTP/2.0", got)
			}
		})
	}
}

// TestStockTransportFallsBackToHTTP1 shows why NewClientTransport sets its
// protocols: a stock transport with a custom TLS config negotiates
// HTTP/1.1, which the agent port accepts for unary debugging calls but on
// which a session's bidi stream cannot work.
func TestStockTransportFallsBackToHTTP1(t *testing.T) {
	t.Parallel()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	addr, proto := startTLSServer(t, s, false, "h2", "http/1.1")
	cl, err := tlsconfig.NewClient(tlsconfig.Files{CAFile: s.CAFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := cl.Config("127.0.0.1")
	cfg.NextProtos = nil // what a stock transport starts from
	stock := &http.Transport{TLSClientConfig: cfg}
	t.Cleanup(stock.CloseIdleConnections)
	c := promproxyv1connect.NewProxyServiceClient(&http.Client{Transport: stock}, "https://"+addr, connect.WithGRPC())
	stream, err := c.Session(t.Context())
	if err == nil {
		// A refused stream fails Send with io.EOF; Receive has the reason.
		_ = stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}})
		_, err = stream.Receive()
		_ = stream.CloseResponse()
	}
	if err == nil {
		t.Fatalf("a bidi stream worked over the stock transport (%v)", proto.Load())
	}
	// The bidi handler refuses HTTP/1.1 with 505 HTTP Version Not Supported.
	if !strings.Contains(err.Error(), "505") || proto.Load() != "HTTP/1.1" {
		t.Errorf("stock transport: %v over %v, want a 505 over HTTP/1.1", err, proto.Load())
	}
}

// TestTLSPortRefusesPlaintext: an h2c client cannot talk to a TLS port.
func TestTLSPortRefusesPlaintext(t *testing.T) {
	t.Parallel()
	s, err := testcerts.NewSet(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := startTLSServer(t, s, false, "h2", "http/1.1")
	h2c := transport.NewClientTransport(nil, transport.DefaultKeepalive)
	t.Cleanup(h2c.CloseIdleConnections)
	c := promproxyv1connect.NewProxyServiceClient(&http.Client{Transport: h2c}, "http://"+addr, connect.WithGRPC())
	_, err = c.ListAgents(t.Context(), &promproxyv1.ListAgentsRequest{})
	if code := connect.CodeOf(err); code != connect.CodeUnavailable && code != connect.CodeCanceled {
		t.Fatalf("h2c client against the TLS port: %v, want a transport failure", err)
	}
}
