package testkit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

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
