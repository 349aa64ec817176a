package testkit

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/testkit/poll"
)

// Kill fails the dials under way with ENETDOWN, and one waiting for room in a full accept queue is under way: it
// waited for its context (a node's DialTimeout), as if the crashed host were still dialing.
func TestKillEndsADialWaitingForRoomAtAListener(t *testing.T) {
	n := NewMemNetwork(MemConfig{})
	srv, cli := n.NewTransport(), n.NewTransport()
	ln, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
