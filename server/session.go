package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	promproxyv1 "github.com/promproxy/promproxy/gen/promproxy/v1"
	"github.com/promproxy/promproxy/gen/promproxy/v1/promproxyv1connect"
)

// Reasons a session ends, for logs and for the scrapes it fails.
var (
	errEvicted       = errors.New("agent evicted after inactivity")
	errProxyStopping = errors.New("proxy is shutting down")
)

// sessionService adapts the Connect handler to the registry.
type sessionService struct {
	promproxyv1connect.UnimplementedProxyServiceHandler
	p *Proxy
	// receivers tracks receive loops, which may outlive their handler by
	// the moment it takes the closed request body to unblock them.
	receivers sync.WaitGroup
	// handlers tracks Session calls: net/http does not wait for the
	// handlers of a closed connection, and Run must not return before the
	// last session has cleaned up after itself.
	handlers sync.WaitGroup
}

func newAgentID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Session runs one agent session. The handler goroutine is the stream's only
// sender; a second goroutine is its only receiver. The handler returns when
// the receiver sees the stream end, when the proxy evicts the agent or shuts
// down, or when a send fails; returning closes the request body, which in
// turn unblocks the receiver.
func (s *sessionService) Session(ctx context.Context, stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) error {
	s.handlers.Add(1)
	defer s.handlers.Done()
	p := s.p
	reg, err := s.receiveRegistration(ctx, stream)
	if err != nil {
		p.metrics.protocolViolations.WithLabelValues("registration").Inc()
		return err
	}
	c := newAgentConn(newAgentID(), reg, stream.Peer().Addr)
	c.identity = identityFrom(ctx)
	log := p.log.With("agent_id", c.id, "agent_name", c.name, "remote_addr", c.remoteAddr)
	if err := p.addAgent(c); err != nil {
		return connect.NewError(connect.CodeUnavailable, err)
	}
	if err := stream.Send(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterAgentResult{
		RegisterAgentResult: &promproxyv1.RegisterAgentResult{
			AgentId:           c.id,
			ProxyVersion:      p.opts.Version,
			HeartbeatInterval: durationpb.New(p.opts.HeartbeatInterval),
		},
	}}); err != nil {
		c.close(err)
		p.removeAgent(c)
		return fmt.Errorf("send registration result: %w", err)
	}
	p.metrics.connects.Inc()
	log.Info("agent connected", "identity", c.identity.label(), "host_name", c.hostName, "consolidated", c.consolidated, "launch_id", c.launchID)

	s.receivers.Add(1)
	go func() {
		defer s.receivers.Done()
		c.close(s.receiveLoop(stream, c, log))
	}()

	sendErr := s.sendLoop(flushGateFrom(ctx), stream, c)
	c.close(sendErr)
	p.removeAgent(c)
	cause := c.err()
	switch {
	case errors.Is(cause, errSessionEnded):
		log.Info("agent disconnected")
		return nil
	case errors.Is(cause, errProxyStopping):
		log.Info("agent session closed for shutdown")
		return connect.NewError(connect.CodeUnavailable, cause)
	case errors.Is(cause, errEvicted):
		log.Warn("agent evicted", "inactive_for", time.Since(c.lastActive()).Round(time.Millisecond))
		return connect.NewError(connect.CodeDeadlineExceeded, cause)
	case errors.Is(cause, errCreditExceeded), errors.Is(cause, errProtocol):
		log.Warn("agent session ended for a protocol violation", "err", cause)
		return connect.NewError(connect.CodeInvalidArgument, cause)
	case connect.CodeOf(cause) == connect.CodeResourceExhausted:
		p.metrics.protocolViolations.WithLabelValues("oversized_message").Inc()
		log.Warn("agent session ended: message too large", "err", cause)
		return connect.NewError(connect.CodeResourceExhausted, cause)
	default:
		log.Info("agent session ended", "err", cause)
		return connect.NewError(connect.CodeUnavailable, cause)
	}
}

// errSessionEnded is a clean end: the agent closed its side of the stream.
var errSessionEnded = errors.New("agent closed the session")

// errProtocol marks an agent message that breaks the protocol.
var errProtocol = errors.New("protocol violation")

func (s *sessionService) receiveRegistration(ctx context.Context, stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse]) (*promproxyv1.RegisterAgent, error) {
	type result struct {
		msg *promproxyv1.SessionRequest
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := stream.Receive()
		ch <- result{msg, err}
	}()
	timer := time.NewTimer(s.p.opts.RegistrationTimeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-ch:
	case <-timer.C:
		// Returning closes the request body, which ends the Receive above.
		return nil, connect.NewError(connect.CodeDeadlineExceeded, errors.New("no RegisterAgent message within the registration timeout"))
	case <-ctx.Done():
		return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	if r.err != nil {
		if errors.Is(r.err, io.EOF) {
			return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("session closed before RegisterAgent"))
		}
		return nil, fmt.Errorf("receive registration: %w", r.err)
	}
	reg := r.msg.GetRegisterAgent()
	if reg == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("the first message of a session must be RegisterAgent"))
	}
	if len(reg.GetAgentName()) > 256 || len(reg.GetHostName()) > 256 || len(reg.GetLaunchId()) > 256 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("agent name, host name and launch id must be at most 256 bytes"))
	}
	return reg, nil
}

func (s *sessionService) sendLoop(gate *flushGate, stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse], c *agentConn) error {
	for {
		select {
		case msg := <-c.out:
			// Messages already queued behind this one go out with it in a
			// single flush; the last of the burst flushes.
			for msg != nil {
				var next *promproxyv1.SessionResponse
				select {
				case next = <-c.out:
				default:
				}
				_, away := msg.GetMsg().(*promproxyv1.SessionResponse_GoingAway)
				gate.hold(next != nil && !away)
				if err := stream.Send(msg); err != nil {
					return fmt.Errorf("send to agent: %w", err)
				}
				if away {
					return errProxyStopping
				}
				msg = next
			}
		case <-c.done:
			return c.cause
		}
	}
}

func (s *sessionService) receiveLoop(stream *connect.BidiStream[promproxyv1.SessionRequest, promproxyv1.SessionResponse], c *agentConn, log *slog.Logger) error {
	p := s.p
	for {
		msg, err := stream.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errSessionEnded
			}
			if cause := c.err(); cause != nil {
				return cause
			}
			return fmt.Errorf("receive from agent: %w", err)
		}
		c.touch()
		switch m := msg.GetMsg().(type) {
		case *promproxyv1.SessionRequest_ScrapeResult:
			known, err := c.deliver(m.ScrapeResult)
			if err != nil {
				p.metrics.protocolViolations.WithLabelValues("credit").Inc()
				return err
			}
			if !known {
				log.Debug("dropped a frame of a finished scrape", "scrape_id", m.ScrapeResult.GetScrapeId())
			}
		case *promproxyv1.SessionRequest_Heartbeat:
			p.metrics.heartbeats.Inc()
			c.trySend(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_Heartbeat{Heartbeat: &promproxyv1.Heartbeat{}}})
		case *promproxyv1.SessionRequest_RegisterPath:
			if err := p.handleRegisterPath(c, m.RegisterPath, log); err != nil {
				return err
			}
		case *promproxyv1.SessionRequest_UnregisterPath:
			if err := p.handleUnregisterPath(c, m.UnregisterPath.GetPath(), log); err != nil {
				return err
			}
		case *promproxyv1.SessionRequest_RegisterAgent:
			p.metrics.protocolViolations.WithLabelValues("duplicate_registration").Inc()
			return fmt.Errorf("%w: RegisterAgent sent twice on one session", errProtocol)
		default:
			p.metrics.protocolViolations.WithLabelValues("unknown_message").Inc()
			return fmt.Errorf("%w: empty or unknown message", errProtocol)
		}
	}
}

// replyCtx bounds how long the receiver may wait to queue a reply, so that a
// full send queue cannot wedge the receive loop forever.
func (p *Proxy) replyCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), p.opts.RegistrationTimeout)
}

func (p *Proxy) handleRegisterPath(c *agentConn, m *promproxyv1.RegisterPath, log *slog.Logger) error {
	path := m.GetPath()
	res := &promproxyv1.RegisterPathResult{Path: path}
	if err := validatePath(path); err != nil {
		res.Reason = err.Error()
	} else if err := validateLabels(m.GetLabels()); err != nil {
		res.Reason = err.Error()
	} else if reason := c.identity.refusePath(path); reason != "" {
		res.Reason = reason
		p.auth.countPathRefusal(refusedPathNotAuthorized)
	} else {
		r := p.reg.registerPath(c, path, m.GetLabels())
		res.Accepted, res.Reason = r.accepted, r.reason
		if r.identityConflict {
			p.auth.countPathRefusal(refusedPathOwned)
		}
		if r.displaced != nil {
			p.metrics.displacements.Inc()
			log.Warn("path displaced another agent", "path", path, "displaced_agent_id", r.displaced.id, "displaced_agent_name", r.displaced.name)
			r.displaced.trySend(&promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_PathDisplaced{
				PathDisplaced: &promproxyv1.PathDisplaced{Path: path, NewAgentName: c.name},
			}})
		}
	}
	if res.Accepted {
		log.Info("path registered", "path", path)
	} else {
		log.Warn("path registration refused", "path", path, "reason", res.Reason)
	}
	ctx, cancel := p.replyCtx()
	defer cancel()
	return c.send(ctx, &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_RegisterPathResult{RegisterPathResult: res}})
}

func (p *Proxy) handleUnregisterPath(c *agentConn, path string, log *slog.Logger) error {
	removed, orphaned := p.reg.unregisterPath(c, path)
	res := &promproxyv1.UnregisterPathResult{Path: path, Removed: removed}
	if !removed {
		res.Reason = fmt.Sprintf("agent does not serve path %q", path)
	} else {
		log.Info("path unregistered", "path", path)
	}
	if orphaned {
		p.metrics.forgetPath(path)
	}
	ctx, cancel := p.replyCtx()
	defer cancel()
	return c.send(ctx, &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_UnregisterPathResult{UnregisterPathResult: res}})
}

func goingAway(reason string) *promproxyv1.SessionResponse {
	return &promproxyv1.SessionResponse{Msg: &promproxyv1.SessionResponse_GoingAway{GoingAway: &promproxyv1.GoingAway{Reason: reason}}}
}

// ListAgents describes the connected agents.
func (s *sessionService) ListAgents(_ context.Context, _ *promproxyv1.ListAgentsRequest) (*promproxyv1.ListAgentsResponse, error) {
	agents := s.p.reg.allAgents()
	resp := &promproxyv1.ListAgentsResponse{Agents: make([]*promproxyv1.AgentInfo, 0, len(agents))}
	for _, c := range agents {
		resp.Agents = append(resp.Agents, &promproxyv1.AgentInfo{
			AgentId:      c.id,
			AgentName:    c.name,
			HostName:     c.hostName,
			RemoteAddr:   c.remoteAddr,
			Consolidated: c.consolidated,
			Paths:        c.ownedPaths(),
			ConnectedAt:  timestamppb.New(c.connectedAt),
			LastActivity: timestamppb.New(c.lastActive()),
			LaunchId:     c.launchID,
		})
	}
	return resp, nil
}
