package testkit

import (
	"context"
	"errors"
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
	conns   map[net.Conn]struct{} // the open ones: a closed connection leaves (it was kept for the whole run)
	ln      net.Listener
	killed  bool // by killAll, until the next Listen (a restart): a crashed host dials nothing
}

func (t *countingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if t.isKilled() {
		return nil, errKilled
	}
	c, err := t.inner.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

// errKilled is the error of a dial on a killed transport.
var errKilled = errors.New("testkit: the host was killed")

func (t *countingTransport) isKilled() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.killed
}

func (t *countingTransport) Listen(addr string) (net.Listener, error) {
	ln, err := t.inner.Listen(addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.ln, t.killed = ln, false
	t.mu.Unlock()
	return &countingListener{Listener: ln, t: t}, nil
}

// track records c until it closes; a connection made as the host was killed is reset at once.
func (t *countingTransport) track(c net.Conn) (net.Conn, error) {
	t.mu.Lock()
	if t.killed {
		t.mu.Unlock()
		reset(c)
		return nil, errKilled
	}
	if t.conns == nil {
		t.conns = make(map[net.Conn]struct{})
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	return &trackedConn{Conn: NewLinkConn(c, t.latency, t.written), raw: c, t: t}, nil
}

// trackedConn leaves its transport's set once closed.
type trackedConn struct {
	net.Conn
	raw  net.Conn
	t    *countingTransport
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.conns, c.raw)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// reset closes c as a crash would: a reset, not an orderly close.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// killAll closes the listener and every connection, as a crash would.
func (t *countingTransport) killAll() {
	t.mu.Lock()
	conns, ln := t.conns, t.ln
	t.conns, t.killed = nil, true
	t.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for c := range conns {
		reset(c)
	}
}

type countingListener struct {
	net.Listener
	t *countingTransport
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if tc, err := l.t.track(c); err == nil {
			return tc, nil
		}
		// accepted as the host was killed: reset, and the next (the listener is closed)
	}
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

// CloseWrite half-closes c (see closeWrite).
func (c *countingConn) CloseWrite() error { return closeWrite(c.Conn) }

// CloseWrite half-closes c (see closeWrite).
func (c *trackedConn) CloseWrite() error { return closeWrite(c.Conn) }

// closeWrite half-closes c if it can, else fails with errors.ErrUnsupported. The wrappers forward it: hidden behind
// an embedded net.Conn, a node's graceful close (its goodbye, then a half-close) found no half-close, closed at
// once, and the delayed link dropped the goodbye still queued.
func closeWrite(c net.Conn) error {
	if hc, ok := c.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return errors.ErrUnsupported
}
