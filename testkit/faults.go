package testkit

import (
	"context"
	"net"
	"sync"

	"github.com/actormesh/actormesh/session"
)

// FaultyTransport wraps a Transport and records every connection it opens or accepts until it is closed, so a
// test can kill them from outside (as a network failure would) and count dial attempts.
type FaultyTransport struct {
	Inner session.Transport

	mu     sync.Mutex
	conns  map[*faultyConn]struct{} // open ones
	dials  int
	dialFn func(addr string) error
}

// NewFaultyTransport wraps TCP.
func NewFaultyTransport() *FaultyTransport { return &FaultyTransport{Inner: session.TCPTransport{}} }

// FailDials makes every later Dial fail with the error f returns (nil lets the dial through).
func (t *FaultyTransport) FailDials(f func(addr string) error) {
	t.mu.Lock()
	t.dialFn = f
	t.mu.Unlock()
}

// Dial implements session.Transport.
func (t *FaultyTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	t.mu.Lock()
	t.dials++
	f := t.dialFn
	t.mu.Unlock()
	if f != nil {
		if err := f(addr); err != nil {
			return nil, err
		}
	}
	c, err := t.Inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t.track(c), nil
}

// Listen implements session.Transport.
func (t *FaultyTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.Inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	return &trackingListener{Listener: ln, t: t}, nil
}

// Dials counts Dial calls so far.
func (t *FaultyTransport) Dials() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dials
}

// KillAll resets every connection opened or accepted and not closed yet, as a network failure would (the peers
// read a reset, not an orderly end), and returns how many it reset.
func (t *FaultyTransport) KillAll() int {
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for c := range conns {
		reset(c.Conn)
	}
	return len(conns)
}

// track records c until it is closed.
func (t *FaultyTransport) track(c net.Conn) net.Conn {
	fc := &faultyConn{Conn: c, t: t}
	t.mu.Lock()
	if t.conns == nil {
		t.conns = make(map[*faultyConn]struct{})
	}
	t.conns[fc] = struct{}{}
	t.mu.Unlock()
	return fc
}

// faultyConn leaves its FaultyTransport's set once closed; it keeps the half-close of the connection it wraps.
type faultyConn struct {
	net.Conn
	t *FaultyTransport
}

func (c *faultyConn) Close() error {
	c.t.mu.Lock()
	delete(c.t.conns, c)
	c.t.mu.Unlock()
	return c.Conn.Close()
}

// CloseWrite half-closes c (see closeWrite).
func (c *faultyConn) CloseWrite() error { return closeWrite(c.Conn) }

type trackingListener struct {
	net.Listener
	t *FaultyTransport
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.t.track(c), nil
}
