package testkit

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// The TCP transport of node sim forgets the connections that closed (it kept every one of the run, ~1.2 KB each,
// in the figures' peak RSS), and a killed host dials nothing until it listens again (its redials reached live
// peers after the "crash").
func TestTheCountingTransportForgetsClosedConnectionsAndDialsNothingOnceKilled(t *testing.T) {
	var written atomic.Int64
	server := &countingTransport{inner: session.TCPTransport{}, written: &written}
	ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	client := &countingTransport{inner: session.TCPTransport{}, written: &written}
	if _, err := client.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 100 {
		c, err := client.Dial(ctx, ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	client.mu.Lock()
	open := len(client.conns)
	client.mu.Unlock()
	if open != 0 {
		t.Fatalf("%d connections held after 100 were closed, want 0", open)
	}
	client.killAll()
	if _, err := client.Dial(ctx, ln.Addr().String()); !errors.Is(err, errKilled) {
		t.Fatalf("a dial by a killed host: %v, want errKilled", err)
	}
	restarted, err := client.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	c, err := client.Dial(ctx, ln.Addr().String())
	if err != nil {
		t.Fatalf("a dial once the host listens again: %v", err)
	}
	_ = c.Close()
	client.killAll()
}

// The TCP transport of node sim's TCP runs keeps the half-close of the connections it wraps, with and without
// latency: hidden behind the wrappers' embedded net.Conn, a node's graceful close found none, closed at once, and
// the delayed link dropped the goodbye it had just queued.
func TestTheCountingTransportsConnectionsHalfClose(t *testing.T) {
	for _, latency := range []time.Duration{0, 20 * time.Millisecond} {
		var written atomic.Int64
		server := &countingTransport{inner: session.TCPTransport{}, written: &written}
		ln, err := server.Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			if c, err := ln.Accept(); err == nil {
				accepted <- c
			}
			close(accepted)
		}()
		client := &countingTransport{inner: session.TCPTransport{}, written: &written, latency: latency}
		c, err := client.Dial(context.Background(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		peer := <-accepted
		if _, err := c.Write([]byte("goodbye")); err != nil {
			t.Fatal(err)
		}
		hc, ok := c.(interface{ CloseWrite() error })
		if !ok {
			t.Fatalf("latency %v: the connection has no CloseWrite", latency)
		}
		if err := hc.CloseWrite(); err != nil {
			t.Fatalf("latency %v: CloseWrite: %v", latency, err)
		}
		_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(peer); err != nil || string(got) != "goodbye" {
			t.Fatalf("latency %v: the peer read %q, %v; want the goodbye, then EOF", latency, got, err)
		}
		_ = c.Close()
		_ = peer.Close()
		_ = ln.Close()
	}
}

// gatedTransport is a TCP transport whose dials wait for the test: entered is sent to once a dial has started.
type gatedTransport struct {
	session.TCPTransport
	entered, gate chan struct{}
}

func (g gatedTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.TCPTransport.Dial(ctx, addr)
}

// A dial under way when the host is killed fails though its connection came up after the kill, and that
// connection is reset: a crashed host's dial must not connect (killAll's doc).
func TestTheCountingTransportFailsADialUnderWayAtAKill(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	g := gatedTransport{entered: make(chan struct{}), gate: make(chan struct{})}
	tr := &countingTransport{inner: g, written: new(atomic.Int64)}
	dialed := make(chan error, 1)
	go func() {
		c, err := tr.Dial(context.Background(), ln.Addr().String())
		if c != nil {
			_ = c.Close()
		}
		dialed <- err
	}()
	<-g.entered
	tr.killAll()
	close(g.gate)
	if err := <-dialed; !errors.Is(err, errKilled) {
		t.Fatalf("a dial under way at the kill: %v, want errKilled", err)
	}
	peer := <-accepted
	defer peer.Close()
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer of the killed dial reads %v, want the connection ended", err)
	}
}
