package main

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	mafmt "github.com/multiformats/go-multiaddr-fmt"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/actormesh/actormesh/testkit"
)

// delayTCP is libp2p's TCP with node sim's link emulation: both ends of every connection hand each write to the
// socket the latency after it was made (testkit.NewDelayConn), and every byte written counts in written.
type delayTCP struct {
	upgrader transport.Upgrader
	rcmgr    network.ResourceManager
	latency  time.Duration
	written  *atomic.Int64
}

var _ transport.Transport = (*delayTCP)(nil)

// newDelayTCP returns a libp2p transport constructor (libp2p.Transport) for delayTCP.
func newDelayTCP(latency time.Duration, written *atomic.Int64) func(transport.Upgrader, network.ResourceManager) (*delayTCP, error) {
	return func(u transport.Upgrader, rcmgr network.ResourceManager) (*delayTCP, error) {
		return &delayTCP{upgrader: u, rcmgr: rcmgr, latency: latency, written: written}, nil
	}
}

// wrap puts the emulated link around a raw TCP connection.
func (t *delayTCP) wrap(c net.Conn) (manet.Conn, error) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // as libp2p's TCP transport does
	}
	return manet.WrapNetConn(testkit.NewDelayConn(&countingConn{Conn: c, written: t.written}, t.latency))
}

// Dial implements transport.Transport.
func (t *delayTCP) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
	scope, err := t.rcmgr.OpenConnection(network.DirOutbound, true, raddr)
	if err != nil {
		return nil, err
	}
	c, err := t.dial(ctx, raddr, p, scope)
	if err != nil {
		scope.Done()
		return nil, err
	}
	return c, nil
}

func (t *delayTCP) dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	if err := scope.SetPeer(p); err != nil {
		return nil, err
	}
	netw, addr, err := manet.DialArgs(raddr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, netw, addr)
	if err != nil {
		return nil, err
	}
	c, err := t.wrap(raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return t.upgrader.Upgrade(ctx, t, c, network.DirOutbound, p, scope)
}

// CanDial implements transport.Transport.
func (t *delayTCP) CanDial(addr ma.Multiaddr) bool { return mafmt.TCP.Matches(addr) }

// Listen implements transport.Transport.
func (t *delayTCP) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	l, err := manet.Listen(laddr)
	if err != nil {
		return nil, err
	}
	return t.upgrader.UpgradeGatedMaListener(t, t.upgrader.GateMaListener(&delayListener{Listener: l, t: t})), nil
}

// Protocols implements transport.Transport.
func (t *delayTCP) Protocols() []int { return []int{ma.P_TCP} }

// Proxy implements transport.Transport.
func (t *delayTCP) Proxy() bool { return false }

// delayListener wraps every accepted connection in the emulated link.
type delayListener struct {
	manet.Listener
	t *delayTCP
}

func (l *delayListener) Accept() (manet.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		w, err := l.t.wrap(c)
		if err != nil {
			c.Close()
			continue
		}
		return w, nil
	}
}

// countingConn counts the bytes written to a socket.
type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}
