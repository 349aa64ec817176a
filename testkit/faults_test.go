package testkit

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// KillAll resets the connections still open, as a network failure would: the peer reads a reset, not an orderly
// end, and the connections closed already are neither reset again nor counted (they were kept until KillAll).
func TestFaultyTransportKillAllResetsTheOpenConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peers := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(peers)
				return
			}
			peers <- c
		}
	}()
	ft := NewFaultyTransport()
	var conns []net.Conn
	for range 4 {
		c, err := ft.Dial(context.Background(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	var accepted []net.Conn
	for range 4 {
		accepted = append(accepted, <-peers)
	}
	defer func() {
		for _, c := range accepted {
			_ = c.Close()
		}
	}()
	for _, c := range conns[:3] {
		_ = c.Close()
	}
	if n := ft.KillAll(); n != 1 {
		t.Fatalf("KillAll reset %d connections, want the 1 still open", n)
	}
	last := accepted[3]
	_ = last.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(last) // nil at an orderly end (EOF)
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the killed connection's peer read %v, want a reset", err)
	}
}
