// Package faultnet is a TCP relay for tests that puts a controllable link
// between two endpoints on the loopback interface. It forwards bytes in
// both directions until told to stall, when it silently stops forwarding
// without closing anything: both ends see a link that swallows packets, as
// when a NAT or firewall forgets a connection or a cable is pulled. Resume
// delivers what was held back, as TCP retransmission would once the link is
// back; Reset breaks every connection at once.
package faultnet

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Relay accepts connections on a loopback port and forwards each one to a
// target address.
type Relay struct {
	target string
	ln     net.Listener

	mu      sync.Mutex
	stalled bool
	gate    chan struct{} // closed while the link forwards; replaced on Stall
	conns   map[*pair]struct{}
	closed  bool

	wg sync.WaitGroup
}

// pair is one relayed connection: the accepted client side and the dialled
// target side.
type pair struct {
	client net.Conn
	target net.Conn // nil until dialled
}

// Listen starts a relay to target on 127.0.0.1 with an ephemeral port.
func Listen(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultnet: listen: %w", err)
	}
	r := &Relay{target: target, ln: ln, gate: make(chan struct{}), conns: make(map[*pair]struct{})}
	close(r.gate)
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// Addr is the address clients dial instead of the target.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Stall stops forwarding in both directions. Connections stay open and
// their bytes, including a close from either end, are held until Resume.
// New connections are accepted but not dialled through, like a SYN lost on
// the way.
func (r *Relay) Stall() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stalled {
		r.stalled = true
		r.gate = make(chan struct{})
	}
}

// Resume forwards again, starting with whatever was held back.
func (r *Relay) Resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stalled {
		r.stalled = false
		close(r.gate)
	}
}

// Stalled reports whether the link is stalled.
func (r *Relay) Stalled() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stalled
}

// Conns is the number of relayed connections that are still open.
func (r *Relay) Conns() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// Reset aborts every relayed connection with a TCP RST on both sides, as a
// middlebox that drops its state and answers with resets would.
func (r *Relay) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for p := range r.conns {
		p.abort()
	}
}

// Close stops accepting, closes every connection and waits until every
// goroutine of the relay has ended.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	err := r.ln.Close()
	for p := range r.conns {
		p.abort()
	}
	if r.stalled {
		// Unblock copies waiting at the gate; their connections are
		// already closed, so nothing more is delivered.
		r.stalled = false
		close(r.gate)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// waitOpen blocks while the link is stalled. It reports false when the
// relay closed meanwhile.
func (r *Relay) waitOpen() bool {
	r.mu.Lock()
	gate := r.gate
	r.mu.Unlock()
	<-gate
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed
}

func (r *Relay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		p := &pair{client: c}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			_ = c.Close()
			return
		}
		r.conns[p] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.serve(p)
	}
}

func (r *Relay) serve(p *pair) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, p)
		r.mu.Unlock()
		_ = p.client.Close()
		if p.target != nil {
			_ = p.target.Close()
		}
	}()
	if !r.waitOpen() {
		return
	}
	t, err := net.Dial("tcp", r.target)
	if err != nil {
		p.abortClient()
		return
	}
	r.mu.Lock()
	p.target = t
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return
	}
	done := make(chan struct{}, 2)
	go func() { r.pipe(t, p.client); done <- struct{}{} }()
	go func() { r.pipe(p.client, t); done <- struct{}{} }()
	<-done
	<-done
}

// pipe copies src to dst through the gate. A clean end of src is passed on
// as a half-close; an error aborts both sides.
func (r *Relay) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !r.waitOpen() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				abortConn(src)
				return
			}
		}
		if err != nil {
			if !r.waitOpen() {
				return
			}
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			abortConn(dst)
			return
		}
	}
}

func (p *pair) abort() {
	p.abortClient()
	if p.target != nil {
		abortConn(p.target)
	}
}

func (p *pair) abortClient() { abortConn(p.client) }

// abortConn closes c with a RST rather than a FIN.
func abortConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
