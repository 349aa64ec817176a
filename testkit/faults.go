package testkit

import (
	"context"
	"net"
	"sync"

	"github.com/actormesh/actormesh/session"
)

// FaultyTransport wraps a Transport and records every connection it opens or accepts, so a test can kill them from
// outside (as a network failure would) and count dial attempts.
type FaultyTransport struct {
	Inner session.Transport

	mu     sync.Mutex
	conns  []net.Conn
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
	t.track(c)
	return c, nil
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

// KillAll closes every connection opened or accepted so far, as a network failure would.
func (t *FaultyTransport) KillAll() int {
	t.mu.Lock()
	conns := t.conns
	t.conns = nil
	t.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

func (t *FaultyTransport) track(c net.Conn) {
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
}

type trackingListener struct {
	net.Listener
	t *FaultyTransport
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.t.track(c)
	}
	return c, err
}
