package testkit

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/testkit/poll"
)

// Kill fails the dials under way with ENETDOWN, and one waiting for room in a full accept queue is under way: it
// waited for its context (a node's DialTimeout), as if the crashed host were still dialing.
func TestKillEndsADialWaitingForRoomAtAListener(t *testing.T) {
	n, cli, ln := memPair(t)
	for range acceptBacklog {
		c, err := cli.Dial(context.Background(), ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		c, err := cli.Dial(ctx, ln.Addr().String())
		if c != nil {
			_ = c.Close()
		}
		res <- err
	}()
	l := ln.(*memListener)
	poll.Until(t, 5*time.Second, func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		return l.room != nil // the dial waits for room
	}, "the dial to wait for room")
	cli.Kill()
	select {
	case err := <-res:
		if !errors.Is(err, syscall.ENETDOWN) {
			t.Fatalf("the waiting dial failed with %v; want ENETDOWN", err)
		}
	case <-ctx.Done():
		t.Fatal("a dial waiting for room at a listener went on waiting after its transport was killed")
	}
}

// A read deadline set in the past wakes a Read blocked on an empty connection at once, with
// os.ErrDeadlineExceeded (SetReadDeadline's doc: it wakes a blocked Read; a context's end is often carried so).
func TestAPastReadDeadlineWakesABlockedRead(t *testing.T) {
	_, cli, ln := memPair(t)
	c, err := cli.Dial(context.Background(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		read <- err
	}()
	s := c.(*memConn).s
	poll.Until(t, 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.dir[1].readable != nil // the Read waits
	}, "the Read to block")
	_ = c.SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-read:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the blocked Read: %v, want os.ErrDeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		_ = c.Close()
		<-read
		t.Fatal("a Read blocked on an empty connection still waits 5 s after a past read deadline")
	}
}

// memPair returns a new in-memory network, a listener on one of its transports (closed at the end of the test) and
// another transport to dial it from.
func memPair(t *testing.T) (n *MemNetwork, cli *MemTransport, ln net.Listener) {
	t.Helper()
	n = NewMemNetwork(MemConfig{})
	cli = n.NewTransport()
	ln, err := n.NewTransport().Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return n, cli, ln
}
