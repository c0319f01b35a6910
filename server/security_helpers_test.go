package server_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/testcerts"
	"github.com/promproxy/promproxy/internal/testlog"
	"github.com/promproxy/promproxy/internal/tlsconfig"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/server"
)

// secureProxy runs a proxy with its own metrics registry and a log the
// test can search.
func secureProxy(t *testing.T, mutate func(*server.Options)) (*server.Proxy, *prometheus.Registry, *testlog.Recorder) {
	t.Helper()
	reg := prometheus.NewRegistry()
	logs := testlog.NewRecorder(t)
	p := runProxy(t, func(o *server.Options) {
		o.Registerer = reg
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if mutate != nil {
			mutate(o)
		}
	})
	return p, reg, logs
}

// dialOpts are the credentials a test agent presents.
type dialOpts struct {
	token  string
	header http.Header
	tls    *tls.Config // nil dials h2c
}

// headerInterceptor adds headers to every request, the way the agent adds
// its token.
type headerInterceptor http.Header

func (h headerInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for k, v := range h {
			req.Header()[k] = v
		}
		return next(ctx, req)
	}
}

func (h headerInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		c := next(ctx, spec)
		for k, v := range h {
			c.RequestHeader()[k] = v
		}
		return c
	}
}

func (h headerInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func serviceClient(t *testing.T, p *server.Proxy, o dialOpts) promproxyv1connect.ProxyServiceClient {
	t.Helper()
	tr := transport.NewClientTransport(o.tls, transport.DefaultKeepalive)
	t.Cleanup(tr.CloseIdleConnections)
	h := http.Header{}
	for k, v := range o.header {
		h[k] = v
	}
	if o.token != "" {
		h.Set(server.AgentTokenHeader, o.token)
	}
	scheme := "http://"
	if o.tls != nil {
		scheme = "https://"
	}
	return promproxyv1connect.NewProxyServiceClient(&http.Client{Transport: tr}, scheme+p.AgentAddr().String(),
		connect.WithGRPC(), connect.WithInterceptors(headerInterceptor(h)))
}

// openSession dials and sends RegisterAgent. It returns the agent once
// registered, or the error the proxy answered with.
func openSession(t *testing.T, p *server.Proxy, o dialOpts, name string) (*fakeAgent, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := serviceClient(t, p, o).Session(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	fa := &fakeAgent{t: t, stream: stream, cancel: cancel}
	t.Cleanup(fa.close)
	// A refused stream may already be closed when the first message goes
	// out; the refusal itself arrives on Receive.
	_ = stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{AgentName: name}}})
	m, err := fa.recv()
	if err != nil {
		return nil, err
	}
	fa.id = m.GetRegisterAgentResult().GetAgentId()
	return fa, nil
}

// registerPath asks for path and returns the proxy's answer.
func (fa *fakeAgent) registerPath(path string, consolidated ...bool) *promproxyv1.RegisterPathResult {
	fa.t.Helper()
	fa.send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterPath{RegisterPath: &promproxyv1.RegisterPath{Path: path}}})
	for {
		m, err := fa.recv()
		if err != nil {
			fa.t.Fatalf("register %q: %v", path, err)
		}
		if r := m.GetRegisterPathResult(); r != nil {
			return r
		}
	}
}

// agents lists the proxy's agents with an authorized client.
func agents(t *testing.T, p *server.Proxy, o dialOpts) []*promproxyv1.AgentInfo {
	t.Helper()
	resp, err := serviceClient(t, p, o).ListAgents(t.Context(), &promproxyv1.ListAgentsRequest{})
	if err != nil {
		t.Fatalf("ListAgents: %v", err)
	}
	return resp.GetAgents()
}

// metricValue reads one sample from g; a missing series reads 0.
func metricValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// clientTLS is an agent's TLS configuration for the given files.
func clientTLS(t *testing.T, f tlsconfig.Files) *tls.Config {
	t.Helper()
	c, err := tlsconfig.NewClient(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Config("127.0.0.1")
}

// issueClient writes a client certificate of s's CA and returns its TLS
// configuration.
func issueClient(t *testing.T, s *testcerts.Set, name string, r testcerts.Request) *tls.Config {
	t.Helper()
	r.Client = true
	pair, err := s.CA.Issue(r)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := pair.Write(s.Dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return clientTLS(t, tlsconfig.Files{CertFile: certFile, KeyFile: keyFile, CAFile: s.CAFile})
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
