// Package transport builds the HTTP/2 servers and clients that carry the
// agent channel. The agent's session is a Connect bidi stream, which needs
// HTTP/2 end to end: cleartext HTTP/2 with prior knowledge (h2c) when TLS is
// off, and h2 negotiated by ALPN when it is on. Both ends send HTTP/2 PINGs on
// an idle connection so that a half-open link is noticed in seconds rather
// than when the kernel gives up on TCP.
package transport

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Keepalive controls the HTTP/2 PINGs that detect a dead link.
type Keepalive struct {
	// Interval is how long a connection may be silent before a PING is sent.
	Interval time.Duration
	// Timeout is how long to wait for the PING's answer before the
	// connection is closed.
	Timeout time.Duration
}

// DefaultKeepalive notices a silently dead link within 25 seconds (a closed
// or reset connection is noticed at once). Its interval is longer than the
// 15 s heartbeat on purpose: a healthy idle session then never goes quiet
// long enough for a PING, and PINGs flow only once heartbeats stop. With
// equal intervals the two raced, and PINGs and their answers were more
// than half the writes of a proxy holding 10,000 idle agents.
//
// The figures weigh detection against the cost of an idle fleet: every
// heartbeat exchange wakes the proxy, and 10,000 agents at the 5 s and 8 s
// of earlier releases kept a quarter of a core busy doing nothing else.
// Operators who want faster detection lower keepAliveTimeSecs; PINGs then
// flow between heartbeats, at a cost per agent.
var DefaultKeepalive = Keepalive{Interval: 20 * time.Second, Timeout: 5 * time.Second}

// flowWindow is the HTTP/2 receive window per stream and per connection.
// Every scrape of an agent shares one stream, so the default 1 MiB stream
// window would cap a busy agent's throughput at one window per round trip.
const flowWindow = 4<<20 - 1

// NewServer returns an http.Server for the agent channel. tlsConfig nil
// means h2c. HTTP/1.1 is served too, for the unary debugging RPCs that an
// operator calls with curl and the Connect protocol's JSON; sessions need
// HTTP/2 and get it. There is deliberately no ReadTimeout or WriteTimeout:
// they would cap the lifetime of every agent session.
func NewServer(h http.Handler, tlsConfig *tls.Config, ka Keepalive) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if tlsConfig == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP2(true)
	}
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams:          250,
			MaxReadFrameSize:              MaxFrameSize,
			MaxReceiveBufferPerConnection: flowWindow,
			MaxReceiveBufferPerStream:     flowWindow,
			SendPingTimeout:               ka.Interval,
			PingTimeout:                   ka.Timeout,
		},
	}
}

// NewClientTransport returns a transport that speaks only HTTP/2: h2c with
// prior knowledge when tlsConfig is nil, h2 over TLS otherwise. Setting the
// protocols explicitly matters: a transport with a custom TLS config would
// otherwise negotiate HTTP/1.1, on which bidi streams cannot work.
func NewClientTransport(tlsConfig *tls.Config, ka Keepalive) *http.Transport {
	var protocols http.Protocols
	if tlsConfig == nil {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP2(true)
		tlsConfig = tlsConfig.Clone()
		tlsConfig.NextProtos = []string{"h2"}
	}
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		Protocols:           &protocols,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerConnection: flowWindow,
			MaxReceiveBufferPerStream:     flowWindow,
			SendPingTimeout:               ka.Interval,
			PingTimeout:                   ka.Timeout,
		},
	}
}
