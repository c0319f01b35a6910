package main

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/promproxy/promproxy/client"
	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/backoff"
	"github.com/promproxy/promproxy/internal/transport"
)

// fleet is many protocol-level agents in one process. Each has its own
// HTTP/2 connection and session, registers one path, answers scrapes with
// a small exposition naming itself, and sends heartbeats when idle, as the
// real agent does. It does not fetch targets: the fleet rows measure the
// proxy holding sessions, not the scrape path.
type fleet struct {
	base   string
	policy backoff.Policy
	agents []*simAgent

	// gen counts deliberate disconnects; a registration counts only on a
	// session started in the current generation.
	gen        atomic.Int64
	registered atomic.Int64
	changed    chan struct{} // signalled (lossy) when registered changes

	connMu sync.Mutex
	conns  map[net.Conn]struct{}

	// back lists the agents registered since the last dropAll.
	backMu sync.Mutex
	back   []*simAgent
}

// simAgent is one agent of the fleet.
type simAgent struct {
	f          *fleet
	i          int
	path       string
	body       []byte
	client     promproxyv1connect.ProxyServiceClient
	hc         *http.Client
	tr         *http.Transport
	registered atomic.Bool
}

func newFleet(agentAddr string, n int) *fleet {
	f := &fleet{
		base:    "http://" + agentAddr,
		policy:  client.DefaultOptions().Backoff,
		changed: make(chan struct{}, 1),
		conns:   make(map[net.Conn]struct{}),
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	for i := range n {
		a := &simAgent{f: f, i: i, path: fmt.Sprintf("fleet_%d", i)}
		a.body = fmt.Appendf(nil, "# HELP fleet_agent_info Which simulated agent answered.\n# TYPE fleet_agent_info gauge\nfleet_agent_info{path=%q} 1\n", a.path)
		a.tr = transport.NewClientTransport(nil, transport.DefaultKeepalive)
		a.tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				f.connMu.Lock()
				f.conns[c] = struct{}{}
				f.connMu.Unlock()
			}
			return c, err
		}
		// The same protocol options as the real agent's session.
		a.hc = &http.Client{Transport: transport.WholeMessages(a.tr)}
		a.client = promproxyv1connect.NewProxyServiceClient(a.hc, f.base,
			connect.WithGRPC(), connect.WithAcceptCompression("gzip", nil, nil))
		f.agents = append(f.agents, a)
	}
	return f
}

// raiseFileLimit lifts the soft open-file limit to the hard one: the fleet
// needs a descriptor per agent.
func raiseFileLimit(need int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return err
		}
	}
	if lim.Cur < uint64(need) {
		return fmt.Errorf("open-file limit %d is below the %d the fleet needs (raise ulimit -Hn or use --agents)", lim.Cur, need)
	}
	return nil
}

// start runs every agent, at most burst of them connecting at a time, so
// that the cold start is a ramp rather than the reconnect storm measured
// separately.
func (f *fleet) start(ctx context.Context, wg *sync.WaitGroup, burst int) {
	sem := make(chan struct{}, burst)
	for _, a := range f.agents {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() { a.run(ctx, sem) })
	}
}

// waitRegistered waits until n agents are registered or the deadline.
func (f *fleet) waitRegistered(ctx context.Context, n int64, deadline time.Duration) (time.Duration, error) {
	start := time.Now()
	t := time.NewTimer(deadline)
	defer t.Stop()
	for f.registered.Load() < n {
		select {
		case <-f.changed:
		case <-t.C:
			return time.Since(start), fmt.Errorf("%d of %d agents registered after %s", f.registered.Load(), n, deadline)
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		}
	}
	return time.Since(start), nil
}

// dropAll breaks every agent's connection at once, as a network blip or a
// NAT reset would; every agent then reconnects after its backoff.
func (f *fleet) dropAll() {
	f.gen.Add(1)
	for _, a := range f.agents {
		a.setRegistered(false)
	}
	f.backMu.Lock()
	f.back = f.back[:0]
	f.backMu.Unlock()
	f.connMu.Lock()
	conns := f.conns
	f.conns = make(map[net.Conn]struct{})
	f.connMu.Unlock()
	for c := range conns {
		_ = c.Close()
	}
}

// pickBack returns a random agent registered since the last dropAll and
// still registered, or nil when there is none yet.
func (f *fleet) pickBack() *simAgent {
	f.backMu.Lock()
	defer f.backMu.Unlock()
	if len(f.back) == 0 {
		return nil
	}
	a := f.back[rand.IntN(len(f.back))]
	if !a.registered.Load() {
		return nil
	}
	return a
}

func (a *simAgent) setRegistered(v bool) {
	if a.registered.Swap(v) == v {
		return
	}
	if v {
		a.f.registered.Add(1)
		a.f.backMu.Lock()
		a.f.back = append(a.f.back, a)
		a.f.backMu.Unlock()
	} else {
		a.f.registered.Add(-1)
	}
	select {
	case a.f.changed <- struct{}{}:
	default:
	}
}

// run keeps the agent connected, with the real agent's backoff. The first
// connection holds a slot of sem until it is registered.
func (a *simAgent) run(ctx context.Context, sem chan struct{}) {
	defer a.tr.CloseIdleConnections()
	// release is only called on this goroutine: session runs its receive
	// loop here.
	release := func() {
		if sem != nil {
			<-sem
			sem = nil
		}
	}
	attempt := 0
	for ctx.Err() == nil {
		established, _ := a.session(ctx, release)
		release()
		a.setRegistered(false)
		var d time.Duration
		if established {
			attempt, d = 0, a.f.policy.Delay(0)
		} else {
			d = a.f.policy.Delay(attempt)
			attempt++
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

func (a *simAgent) session(parent context.Context, onRegistered func()) (established bool, err error) {
	gen := a.f.gen.Load()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// As the real agent does, so that the reconnect storm includes it.
	if err := transport.AwaitSettings(ctx, a.hc, a.f.base+promproxyv1connect.ProxyServiceSessionProcedure); err != nil {
		return false, err
	}
	stream, err := a.client.Session(ctx)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = stream.CloseResponse() })
	defer func() {
		stop()
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
	}()
	var sendMu sync.Mutex
	lastSend := time.Now()
	send := func(m *promproxyv1.SessionRequest) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		lastSend = time.Now()
		return stream.Send(m)
	}
	if err := send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{
		AgentName: "sim-" + a.path, HostName: "fleet", LaunchId: fmt.Sprintf("fleet-%d", a.i), Version: "bench",
	}}}); err != nil {
		return false, err
	}
	first, err := stream.Receive()
	if err != nil {
		return false, err
	}
	welcome := first.GetRegisterAgentResult()
	if welcome == nil {
		return false, errors.New("first message is not RegisterAgentResult")
	}
	hb := welcome.GetHeartbeatInterval().AsDuration()
	if hb <= 0 {
		hb = 5 * time.Second
	}
	if err := send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterPath{RegisterPath: &promproxyv1.RegisterPath{Path: a.path}}}); err != nil {
		return true, err
	}
	go func() {
		t := time.NewTicker(hb)
		defer t.Stop()
		beat := &promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}}
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				sendMu.Lock()
				idle := time.Since(lastSend) >= hb/2
				sendMu.Unlock()
				if idle && send(beat) != nil {
					cancel()
					return
				}
			}
		}
	}()
	for {
		msg, err := stream.Receive()
		if err != nil {
			return true, err
		}
		switch m := msg.GetMsg().(type) {
		case *promproxyv1.SessionResponse_RegisterPathResult:
			if m.RegisterPathResult.GetAccepted() && gen == a.f.gen.Load() {
				a.setRegistered(true)
			}
			onRegistered()
		case *promproxyv1.SessionResponse_ScrapeRequest:
			if err := send(a.answer(m.ScrapeRequest.GetScrapeId())); err != nil {
				return true, err
			}
		case *promproxyv1.SessionResponse_GoingAway:
			return true, errors.New("proxy going away")
		}
	}
}

// answer is a whole scrape result in one frame.
func (a *simAgent) answer(id uint64) *promproxyv1.SessionRequest {
	sum := crc32.ChecksumIEEE(a.body)
	return &promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_ScrapeResult{ScrapeResult: &promproxyv1.ScrapeResult{
		ScrapeId: id,
		Header: &promproxyv1.ScrapeHeader{StatusCode: 200, ContentType: "text/plain; version=0.0.4; charset=utf-8",
			ContentLength: int64(len(a.body))},
		Chunk:      a.body,
		ChunkCrc32: sum,
		Trailer:    &promproxyv1.ScrapeTrailer{BodyLength: int64(len(a.body)), BodyCrc32: sum},
	}}}
}
