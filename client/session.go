package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
	"github.com/promproxy/promproxy/internal/transport"
)

var (
	errGoingAway    = errors.New("proxy is going away")
	errProxySilent  = errors.New("no message from the proxy within three heartbeat intervals")
	errRegistration = errors.New("registration failed")
)

// outbound is one message for the session's sender. release, when set,
// returns the message's pooled buffer once the message is on the wire.
type outbound struct {
	msg     *promproxyv1.SessionRequest
	release func()
}

// session is one connection to one proxy.
//
// Concurrency: the sender goroutine is the only caller of stream.Send and
// drains out; runSession's own goroutine is the only caller of
// stream.Receive. Scrape goroutines communicate with the proxy only through
// out, and are tracked by scrapes so that the session never ends before they
// do.
type session struct {
	a       *Agent
	log     *slog.Logger
	ctx     context.Context // cancelled when the session ends
	out     chan outbound
	wg      sync.WaitGroup // scrapes in flight
	workers *workers       // the goroutines scrapes run on
	lastRx  time.Time      // only touched by the receiving goroutine

	mu        sync.Mutex
	scrapes   map[uint64]*scrapeState
	draining  bool
	displaced map[string]bool
}

// runSession connects to one proxy and serves it until the session ends.
// established reports whether registration succeeded, which decides where
// the next connection attempt goes.
func (a *Agent) runSession(parent context.Context, base string, log *slog.Logger) (established bool, err error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	client := promproxyv1connect.NewProxyServiceClient(a.proxyClient, base,
		connect.WithGRPC(),
		// Bodies are gzipped per scrape already; compressing whole protocol
		// messages again would only cost CPU.
		connect.WithAcceptCompression("gzip", nil, nil),
		connect.WithReadMaxBytes(max(8<<20, 2*a.opts.ChunkSize)),
		connect.WithSendMaxBytes(max(8<<20, 2*a.opts.ChunkSize)),
	)
	// Registration must finish promptly; a proxy that accepts the TCP
	// connection but never answers must not hold the agent forever.
	regTimer := time.AfterFunc(15*time.Second, func() { cancel(fmt.Errorf("%w: no answer from the proxy within 15s", errRegistration)) })
	defer regTimer.Stop()
	// Without this, a session on a fresh connection would send every chunk
	// of a large body in 16 KiB frames for as long as it lasts. It is a
	// courtesy, not a step of the protocol: if it fails, the session is
	// opened anyway, so that a load balancer that refuses HEAD cannot keep
	// the agent out, and a proxy that cannot be reached is reported by the
	// session's own error.
	if err := transport.AwaitSettings(ctx, a.proxyClient, base+promproxyv1connect.ProxyServiceSessionProcedure); err != nil && ctx.Err() != nil {
		return false, sessionErr(ctx, err)
	}
	stream, err := client.Session(ctx)
	if err != nil {
		return false, err
	}
	// The HTTP/2 transport does not abort a streaming response body when the
	// request context ends, so closing the response is what unblocks the
	// receiver when the session is cancelled.
	stopClose := context.AfterFunc(ctx, func() { _ = stream.CloseResponse() })
	defer func() {
		stopClose()
		_ = stream.CloseRequest()
		_ = stream.CloseResponse()
	}()

	if err := stream.Send(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterAgent{RegisterAgent: &promproxyv1.RegisterAgent{
		AgentName:    a.opts.AgentName,
		HostName:     a.hostName,
		LaunchId:     a.launchID,
		Consolidated: a.opts.Consolidated,
		Labels:       a.opts.Labels,
		Version:      a.opts.Version,
	}}}); err != nil {
		// A refused stream fails Send with io.EOF; the proxy's reason (or
		// the TLS failure) is what Receive returns.
		if errors.Is(err, io.EOF) {
			if _, rerr := stream.Receive(); rerr != nil && !errors.Is(rerr, io.EOF) {
				err = rerr
			}
		}
		regTimer.Stop()
		return false, sessionErr(ctx, err)
	}
	first, err := stream.Receive()
	regTimer.Stop()
	if err != nil {
		return false, sessionErr(ctx, err)
	}
	welcome := first.GetRegisterAgentResult()
	if welcome == nil {
		return false, fmt.Errorf("%w: the proxy's first message was not RegisterAgentResult", errRegistration)
	}
	heartbeat := a.opts.HeartbeatInterval
	if d := welcome.GetHeartbeatInterval().AsDuration(); d > 0 {
		heartbeat = d
	}
	a.metrics.connects.WithLabelValues("success").Inc()
	a.connected.Store(true)
	log = log.With("agent_id", welcome.GetAgentId())
	log.Info("connected to proxy", "proxy_version", welcome.GetProxyVersion())

	s := &session{
		a:         a,
		log:       log,
		ctx:       ctx,
		out:       make(chan outbound, 64),
		scrapes:   make(map[uint64]*scrapeState),
		displaced: make(map[string]bool),
		lastRx:    time.Now(),
		workers:   newWorkers(time.Minute),
	}
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		if err := s.sendLoop(stream, heartbeat); err != nil {
			cancel(err)
		}
	}()
	drainDone := make(chan struct{})
	go func() {
		defer close(drainDone)
		select {
		case <-ctx.Done():
		case <-a.draining:
			s.drain()
			cancel(errDrained)
		}
	}()
	// The watchdog notices a proxy that has gone silent even when the
	// transport does not (an L7 middlebox answering HTTP/2 PINGs itself).
	rxCh := make(chan struct{}, 1)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		// The floor keeps very short test intervals from making a
		// merely busy proxy look dead.
		s.watchdog(ctx, cancel, rxCh, max(3*heartbeat, 5*time.Second))
	}()

	for _, t := range a.targets {
		s.enqueue(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_RegisterPath{RegisterPath: &promproxyv1.RegisterPath{
			Path: t.Path, Labels: t.Labels,
		}}}, nil)
	}

	err = s.receiveLoop(stream, rxCh)
	cancel(err)
	s.wg.Wait()
	s.workers.wait()
	<-senderDone
	<-drainDone
	<-watchDone
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if errors.Is(err, errDrained) {
		return true, nil
	}
	return true, err
}

var errDrained = errors.New("agent shut down")

func sessionErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// enqueue hands msg to the sender; it gives up when the session ends.
func (s *session) enqueue(msg *promproxyv1.SessionRequest, release func()) bool {
	select {
	case s.out <- outbound{msg, release}:
		return true
	case <-s.ctx.Done():
		if release != nil {
			release()
		}
		return false
	}
}

func (s *session) sendLoop(stream *connect.BidiStreamForClientSimple[promproxyv1.SessionRequest, promproxyv1.SessionResponse], heartbeat time.Duration) error {
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	last := time.Now()
	hb := &promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}}
	for {
		select {
		case o := <-s.out:
			var err error
			if o.msg == nil {
				// End of the request stream: the proxy sees a clean EOF
				// after everything sent before it.
				err = stream.CloseRequest()
			} else {
				err = stream.Send(o.msg)
			}
			if o.release != nil {
				o.release()
			}
			if err != nil {
				return fmt.Errorf("send to proxy: %w", err)
			}
			last = time.Now()
		case now := <-t.C:
			if now.Sub(last) >= heartbeat/2 {
				if err := stream.Send(hb); err != nil {
					return fmt.Errorf("send heartbeat: %w", err)
				}
				last = now
			}
		case <-s.ctx.Done():
			// Release the buffers of frames that will never be sent.
			for {
				select {
				case o := <-s.out:
					if o.release != nil {
						o.release()
					}
				default:
					return nil
				}
			}
		}
	}
}

func (s *session) watchdog(ctx context.Context, cancel context.CancelCauseFunc, rx <-chan struct{}, limit time.Duration) {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rx:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(limit)
		case <-t.C:
			cancel(errProxySilent)
			return
		}
	}
}

func (s *session) receiveLoop(stream *connect.BidiStreamForClientSimple[promproxyv1.SessionRequest, promproxyv1.SessionResponse], rx chan<- struct{}) error {
	a := s.a
	for {
		msg, err := stream.Receive()
		if err != nil {
			return fmt.Errorf("receive from proxy: %w", err)
		}
		select {
		case rx <- struct{}{}:
		default:
		}
		switch m := msg.GetMsg().(type) {
		case *promproxyv1.SessionResponse_ScrapeRequest:
			s.startScrape(m.ScrapeRequest)
		case *promproxyv1.SessionResponse_ScrapeCredit:
			s.mu.Lock()
			st := s.scrapes[m.ScrapeCredit.GetScrapeId()]
			s.mu.Unlock()
			if st != nil {
				st.credit.add(m.ScrapeCredit.GetFrames())
			}
		case *promproxyv1.SessionResponse_ScrapeCancel:
			s.mu.Lock()
			st := s.scrapes[m.ScrapeCancel.GetScrapeId()]
			s.mu.Unlock()
			if st != nil {
				st.cancel(errCancelledByProxy)
			}
		case *promproxyv1.SessionResponse_RegisterPathResult:
			r := m.RegisterPathResult
			if r.GetAccepted() {
				a.regPaths.Add(1)
				if r.GetReason() != "" {
					s.log.Warn("path registered", "path", r.GetPath(), "note", r.GetReason())
				} else {
					s.log.Info("path registered", "path", r.GetPath())
				}
			} else {
				// One refused path is refused alone: the session and the
				// other paths go on.
				s.log.Error("proxy refused path", "path", r.GetPath(), "reason", r.GetReason())
			}
		case *promproxyv1.SessionResponse_UnregisterPathResult:
			if m.UnregisterPathResult.GetRemoved() {
				a.regPaths.Add(-1)
			}
		case *promproxyv1.SessionResponse_PathDisplaced:
			s.mu.Lock()
			s.displaced[m.PathDisplaced.GetPath()] = true
			s.mu.Unlock()
			a.regPaths.Add(-1)
			s.log.Warn("path taken over by another agent; not registering it again on this session",
				"path", m.PathDisplaced.GetPath(), "new_agent_name", m.PathDisplaced.GetNewAgentName())
		case *promproxyv1.SessionResponse_Heartbeat:
		case *promproxyv1.SessionResponse_GoingAway:
			return errGoingAway
		case *promproxyv1.SessionResponse_RegisterAgentResult:
			return fmt.Errorf("%w: RegisterAgentResult received twice", errRegistration)
		default:
			s.log.Debug("ignoring an unknown message from the proxy")
		}
	}
}

// drain stops taking scrapes, waits for those in flight, and unregisters
// every path, so that the proxy stops routing to this agent before the
// stream closes.
func (s *session) drain() {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	s.wg.Wait()
	for _, t := range s.a.targets {
		s.enqueue(&promproxyv1.SessionRequest{Msg: &promproxyv1.SessionRequest_UnregisterPath{UnregisterPath: &promproxyv1.UnregisterPath{Path: t.Path}}}, nil)
	}
	// Half-close the stream after the unregistrations and wait for the
	// proxy to end the session in turn; cancelling at once would reset the
	// stream and could drop what was just sent.
	s.enqueue(nil, nil)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
	case <-t.C:
	}
}
