package testkit

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actormesh/actormesh/session"
)

// countingTransport is TCP that counts the bytes written to its connections and can reset them all. With a
// latency, every write reaches the socket that long after it was made (delayConn).
type countingTransport struct {
	inner   session.Transport
	written *atomic.Int64
	latency time.Duration
	mu      sync.Mutex
	conns   []net.Conn
	ln      net.Listener
}

func (t *countingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := t.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t.track(c), nil
}

func (t *countingTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.ln = ln
	t.mu.Unlock()
	return &countingListener{Listener: ln, t: t}, nil
}

func (t *countingTransport) track(c net.Conn) net.Conn {
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
	return NewLinkConn(c, t.latency, t.written)
}

// killAll closes the listener and every connection, as a crash would.
func (t *countingTransport) killAll() {
	t.mu.Lock()
	conns, ln := t.conns, t.ln
	t.conns = nil
	t.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // reset, not an orderly close
		}
		_ = c.Close()
	}
}

type countingListener struct {
	net.Listener
	t *countingTransport
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.t.track(c), nil
}

// countingConn counts the bytes written to it.
type countingConn struct {
	net.Conn
	written *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.written.Add(int64(n))
	return n, err
}
