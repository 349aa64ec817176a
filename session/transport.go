package session

import (
	"context"
	"net"
)

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

// Dial implements Transport.
func (TCPTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
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
