package cli

import (
	"testing"
	"time"

	"github.com/promproxy/promproxy/client"
	"github.com/promproxy/promproxy/internal/config"
	"github.com/promproxy/promproxy/internal/transport"
	"github.com/promproxy/promproxy/server"
)

// TestLivenessDefaultsAgree checks the relations the liveness defaults are
// chosen for, in the library options and in the configuration alike: an
// idle session's heartbeats come often enough that keepalive PINGs never
// flow while it is healthy, and often enough that the proxy's eviction
// tolerates lost ones.
func TestLivenessDefaultsAgree(t *testing.T) {
	so := server.DefaultOptions()
	co := client.DefaultOptions()
	pc, ac := config.DefaultProxy(), config.DefaultAgent()

	if so.HeartbeatInterval >= so.Keepalive.Interval {
		t.Errorf("heartbeat %v is not shorter than the keepalive interval %v: idle sessions would exchange PINGs as well", so.HeartbeatInterval, so.Keepalive.Interval)
	}
	if 3*so.HeartbeatInterval > so.MaxAgentInactivity {
		t.Errorf("heartbeat %v: fewer than three fit in the eviction window %v", so.HeartbeatInterval, so.MaxAgentInactivity)
	}
	if co.HeartbeatInterval != so.HeartbeatInterval {
		t.Errorf("agent library heartbeat %v differs from the proxy's %v", co.HeartbeatInterval, so.HeartbeatInterval)
	}
	if got := secs(ac.Internal.HeartbeatMaxInactivitySecs); got != so.HeartbeatInterval {
		t.Errorf("agent config heartbeatMaxInactivitySecs %v differs from the proxy's heartbeat %v", got, so.HeartbeatInterval)
	}
	for name, ka := range map[string]transport.Keepalive{
		"proxy config":  keepalive(pc.GRPC.KeepAliveTimeSecs, pc.GRPC.KeepAliveTimeoutSecs),
		"agent config":  keepalive(ac.GRPC.KeepAliveTimeSecs, ac.GRPC.KeepAliveTimeoutSecs),
		"proxy library": so.Keepalive,
		"agent library": co.Keepalive,
	} {
		if ka != transport.DefaultKeepalive {
			t.Errorf("%s keepalive %+v differs from transport.DefaultKeepalive %+v", name, ka, transport.DefaultKeepalive)
		}
	}
	if d := transport.DefaultKeepalive.Interval + transport.DefaultKeepalive.Timeout; d > 30*time.Second {
		t.Errorf("a silently dead link is noticed only after %v", d)
	}
}
