package actors_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// A Request or Ping whose time runs out while the node is still shaking hands with the peer fails with
// ErrRequestTimeout, as one whose reply is late does: whether under Config.RequestTimeout or the context's deadline.
func TestRequestTimingOutDuringTheHandshakeIsErrRequestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var accepted []net.Conn
	done := make(chan struct{})
	go func() { // accepts, and never answers the handshake
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range accepted {
			c.Close()
		}
	})
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(i int, c *actors.Config) {
		c.DisableDiscovery = true
		c.RequestTimeout = 300 * time.Millisecond
	}))
	a := nw.Nodes[0]
	silent := newIdentity(t).NodeID()
	if err := a.AddAddress(silent, ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Request(context.Background(), silent, "echo/1", wrapperspb.String("x")); !errors.Is(err, actors.ErrRequestTimeout) ||
		!errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Request past Config.RequestTimeout during the handshake: %v, want ErrRequestTimeout", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := a.Ping(ctx, silent); !errors.Is(err, actors.ErrRequestTimeout) {
		t.Errorf("Ping past its context's deadline during the handshake: %v, want ErrRequestTimeout", err)
	}
	// A context cancelled, not timed out, is not a timeout.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := a.Request(ctx, silent, "echo/1", wrapperspb.String("x")); !errors.Is(err, context.Canceled) || errors.Is(err, actors.ErrRequestTimeout) {
		t.Errorf("Request whose context was cancelled during the handshake: %v, want context.Canceled and no timeout", err)
	}
}

// Config.RequestTimeout bounds a Request and a Ping whose context has no deadline: they fail with ErrRequestTimeout
// once it has passed, not later (a request whose peer never answers would otherwise wait for as long as its
// context lasts: for ever). The upper bound is generous: it tells RequestTimeout from a later timeout, not speed.
func TestConfigRequestTimeoutBoundsARequestWithoutDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.RequestTimeout = timeout
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "silent/1", actor.PropsFromFunc(func(actor.Context) {}))
	nw.Connect(0, 1)
	_, mute := rawPeer(t, a) // never reads: no pong comes back
	for what, call := range map[string]func() error{
		"Request to a protocol that never replies": func() error {
			_, err := a.Request(context.Background(), b.ID(), "silent/1", wrapperspb.String("x"))
			return err
		},
		"Ping to a peer that never answers": func() error {
			_, err := a.Ping(context.Background(), mute)
			return err
		},
	} {
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- call() }() // a RequestTimeout not applied would wait for good: fail instead
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s, without a deadline: no answer within 10s (RequestTimeout %v)", what, timeout)
		}
		if el := time.Since(start); !errors.Is(err, actors.ErrRequestTimeout) || el < timeout || el > 2*time.Second {
			t.Errorf("%s, without a deadline: %v after %v, want ErrRequestTimeout after RequestTimeout (%v)", what, err,
				el.Round(time.Millisecond), timeout)
		}
	}
}
