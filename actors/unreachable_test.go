package actors_test

import (
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// TestAPeerClosingDuringTheHandshakeIsUnreachable: an address that accepts the connection and closes it during the
// handshake (the peer crashed, or its per-IP throttle refused the connection) fails Send, Request and Connect with
// ErrUnreachable, the session's error wrapped too. They failed with the bare session.ErrHandshake, which matched
// none of their documented sentinels, and the admin API answered 500 (an audit's finding). A peer of another
// network keeps the session's sentinel.
func TestAPeerClosingDuringTheHandshakeIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 1 {
			cfg.NetworkID = "another-network"
		}
	}))
	a, other := nw.Nodes[0], nw.Nodes[1]
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddAddress(id.NodeID(), ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	msg := wrapperspb.String("x")
	_, reqErr := a.Request(ctxTimeout(t, 5*time.Second), id.NodeID(), "echo/1", msg)
	for name, err := range map[string]error{
		"Request": reqErr,
		"Send":    a.Send(ctxTimeout(t, 5*time.Second), id.NodeID(), "echo/1", msg),
		"Connect": a.Connect(ctxTimeout(t, 5*time.Second), session.PeerAddr{ID: id.NodeID(), Addr: ln.Addr().String()}, false),
	} {
		if !errors.Is(err, actors.ErrUnreachable) || !errors.Is(err, session.ErrHandshake) {
			t.Errorf("%s to a peer that closed during the handshake: %v, want ErrUnreachable wrapping session.ErrHandshake", name, err)
		}
	}
	err = a.Connect(ctxTimeout(t, 5*time.Second), other.Addr(), false)
	if !errors.Is(err, session.ErrNetworkMismatch) || errors.Is(err, actors.ErrUnreachable) {
		t.Errorf("Connect to a node of another network: %v, want session.ErrNetworkMismatch alone", err)
	}
}
