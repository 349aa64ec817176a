package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrDialRefused is returned by a dial to an IP address that the dial's address check refused
// (ContextWithAddrCheck).
var ErrDialRefused = errors.New("session: address refused")

type addrCheckKey struct{}

// ContextWithAddrCheck returns ctx carrying an address check: TCPTransport.Dial under it calls check with each IP
// address it is about to connect to, after resolving a host name and before connecting, and fails with an error
// wrapping ErrDialRefused when check refuses it. A host name is thus judged by the addresses it resolves to at the
// dial itself, with no room for the DNS answer to change between the check and the connection. A Transport with
// no host names (the in-memory one) may ignore it.
func ContextWithAddrCheck(ctx context.Context, check func(netip.Addr) error) context.Context {
	return context.WithValue(ctx, addrCheckKey{}, check)
}

// AddrCheckFrom returns the address check ctx carries (ContextWithAddrCheck), or nil.
func AddrCheckFrom(ctx context.Context) func(netip.Addr) error {
	check, _ := ctx.Value(addrCheckKey{}).(func(netip.Addr) error)
	return check
}

// Transport opens raw connections between nodes. TCP is the default; tests use an in-memory implementation with
// the same interface.
type Transport interface {
	// Dial opens a connection to addr (host:port). It honours ctx's deadline and cancellation.
	Dial(ctx context.Context, addr string) (net.Conn, error)
	// Listen accepts connections on addr (host:port; port 0 picks a free one).
	Listen(addr string) (net.Listener, error)
}

// TCPTransport is the Transport over real TCP sockets.
type TCPTransport struct{}

// Dial implements Transport. It applies the address check ctx carries (ContextWithAddrCheck).
func (TCPTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	if check := AddrCheckFrom(ctx); check != nil {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err == nil {
				err = check(ap.Addr())
			}
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrDialRefused, address, err)
			}
			return nil
		}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	return conn, nil
}

// Listen implements Transport.
func (TCPTransport) Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}
