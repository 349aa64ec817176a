package main

import (
	"context"
	"fmt"
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

// links is how a linkTransport reaches the network: node sim's in-memory transport, or loopback TCP wrapped in
// node sim's latency emulation.
type links struct {
	dial   func(ctx context.Context, addr string) (net.Conn, error)
	listen func(addr string) (net.Listener, error)
	wrap   func(net.Conn) net.Conn // around every raw connection, both ends
}

// memLinks are the links of one node of a MemNetwork.
func memLinks(n *testkit.MemNetwork) links {
	t := n.NewTransport()
	return links{dial: t.Dial, listen: t.Listen, wrap: func(c net.Conn) net.Conn { return c }}
}

// tcpLinks are loopback TCP connections whose every write reaches the socket latency after it was made, counting
// the bytes written in written (testkit.NewLinkConn, as node sim -transport tcp).
func tcpLinks(latency time.Duration, written *atomic.Int64) links {
	var d net.Dialer
	return links{
		dial:   func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
		listen: func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) },
		wrap: func(c net.Conn) net.Conn {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // as libp2p's TCP transport does
			}
			return testkit.NewLinkConn(c, latency, written)
		},
	}
}

// linkTransport is a libp2p transport over links: a node's addresses are /ip4/127.0.0.1/tcp/PORT multiaddrs, the
// host:port its links listen on; the connections are upgraded (security, muxer) by libp2p as its TCP's are.
type linkTransport struct {
	upgrader transport.Upgrader
	rcmgr    network.ResourceManager
	links    links
}

var _ transport.Transport = (*linkTransport)(nil)

// newLinkTransport returns a libp2p transport constructor (for libp2p.Transport) over the links l returns, called
// once per node.
func newLinkTransport(l func() links) func(transport.Upgrader, network.ResourceManager) (*linkTransport, error) {
	return func(u transport.Upgrader, rcmgr network.ResourceManager) (*linkTransport, error) {
		return &linkTransport{upgrader: u, rcmgr: rcmgr, links: l()}, nil
	}
}

// Dial implements transport.Transport.
func (t *linkTransport) Dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID) (transport.CapableConn, error) {
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

func (t *linkTransport) dial(ctx context.Context, raddr ma.Multiaddr, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	if err := scope.SetPeer(p); err != nil {
		return nil, err
	}
	_, addr, err := manet.DialArgs(raddr)
	if err != nil {
		return nil, err
	}
	raw, err := t.links.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c, err := t.maConn(raw)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return t.upgrader.Upgrade(ctx, t, c, network.DirOutbound, p, scope)
}

// maConn wraps a raw connection in the links' emulation and gives it multiaddrs.
func (t *linkTransport) maConn(raw net.Conn) (manet.Conn, error) {
	local, err := multiaddrOf(raw.LocalAddr())
	if err != nil {
		return nil, err
	}
	remote, err := multiaddrOf(raw.RemoteAddr())
	if err != nil {
		return nil, err
	}
	return &maConn{Conn: t.links.wrap(raw), local: local, remote: remote}, nil
}

// CanDial implements transport.Transport.
func (t *linkTransport) CanDial(addr ma.Multiaddr) bool { return mafmt.TCP.Matches(addr) }

// Listen implements transport.Transport.
func (t *linkTransport) Listen(laddr ma.Multiaddr) (transport.Listener, error) {
	_, addr, err := manet.DialArgs(laddr)
	if err != nil {
		return nil, err
	}
	l, err := t.links.listen(addr)
	if err != nil {
		return nil, err
	}
	m, err := multiaddrOf(l.Addr())
	if err != nil {
		l.Close()
		return nil, err
	}
	return t.upgrader.UpgradeGatedMaListener(t, t.upgrader.GateMaListener(&maListener{Listener: l, addr: m, t: t})), nil
}

// Protocols implements transport.Transport.
func (t *linkTransport) Protocols() []int { return []int{ma.P_TCP} }

// Proxy implements transport.Transport.
func (t *linkTransport) Proxy() bool { return false }

// maListener is a links listener seen as a manet.Listener.
type maListener struct {
	net.Listener
	addr ma.Multiaddr
	t    *linkTransport
}

func (l *maListener) Accept() (manet.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c, err := l.t.maConn(raw)
		if err != nil {
			raw.Close()
			continue
		}
		return c, nil
	}
}

func (l *maListener) Multiaddr() ma.Multiaddr { return l.addr }

// maConn is a links connection seen as a manet.Conn.
type maConn struct {
	net.Conn
	local, remote ma.Multiaddr
}

func (c *maConn) LocalMultiaddr() ma.Multiaddr  { return c.local }
func (c *maConn) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// multiaddrOf turns an IPv4 host:port address into /ip4/host/tcp/port.
func multiaddrOf(a net.Addr) (ma.Multiaddr, error) {
	tcp, err := net.ResolveTCPAddr("tcp", a.String())
	if err != nil || tcp.IP.To4() == nil {
		return nil, fmt.Errorf("address %q is not an IPv4 host:port", a.String())
	}
	return manet.FromNetAddr(tcp)
}
