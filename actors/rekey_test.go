package actors_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// peerInfo returns n's PeerInfo of its connection to peer, failing the test if there is none.
func peerInfo(t *testing.T, n *actors.Node, peer session.NodeID) actors.PeerInfo {
	t.Helper()
	for _, p := range n.Peers() {
		if p.ID == peer {
			return p
		}
	}
	t.Fatalf("%s has no connection to %s", n.ID().Short(), peer.Short())
	return actors.PeerInfo{}
}

// A node's Config.RekeyInterval reaches its connections' handshakes: two nodes over TCP, one of them at
// session.MinRekeyInterval, rekey both directions of their connection at that interval, and requests and replies
// still go through after more frames than two intervals each way. Config.RekeyInterval was not there, and nodes
// always rekeyed at session.DefaultRekeyInterval.
func TestConfigRekeyIntervalRekeysTheNodesConnections(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 0 {
			cfg.RekeyInterval = session.MinRekeyInterval
		}
	}))
	a, b, c := nw.Nodes[0], nw.Nodes[1], nw.Nodes[2]
	register(t, b, "echo/1", echo())
	nw.Connect(1, 0) // a accepts b's connection
	nw.Connect(0, 2) // and dials c
	for _, pair := range [][2]*actors.Node{{a, b}, {b, a}, {a, c}, {c, a}} {
		if got := peerInfo(t, pair[0], pair[1].ID()).RekeyInterval; got != session.MinRekeyInterval {
			t.Fatalf("%s's RekeyInterval of its connection to %s = %d, want the smaller of the two, %d",
				pair[0].ID().Short(), pair[1].ID().Short(), got, session.MinRekeyInterval)
		}
	}
	// One request and one reply in flight at a time: each is a frame of its own, so each direction seals and opens
	// more than two intervals of frames, and the last request goes under a third key each way.
	const requests = 2*session.MinRekeyInterval + 1
	ctx := ctxTimeout(t, 2*time.Minute)
	for i := range requests {
		s := fmt.Sprint(i, "-", i%7)
		reply, err := a.Request(ctx, b.ID(), "echo/1", wrapperspb.String(s))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, want := reply.(*wrapperspb.StringValue).GetValue(), fmt.Sprint(i%7, "-", reverse(fmt.Sprint(i))); got != want {
			t.Fatalf("reply %d = %q, want %q", i, got, want)
		}
	}
	for _, pair := range [][2]*actors.Node{{a, b}, {b, a}} {
		if p := peerInfo(t, pair[0], pair[1].ID()); p.Rekeys < 4 {
			t.Fatalf("%s's connection to %s rekeyed %d times after %d requests, want at least 2 each way",
				pair[0].ID().Short(), pair[1].ID().Short(), p.Rekeys, requests)
		}
	}
}

// reverse returns s with its bytes in the reverse order.
func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// Validate takes a RekeyInterval of 0 (the session's default) or within session's bounds, and refuses others with
// an error naming the field and the bounds.
func TestValidateBoundsRekeyInterval(t *testing.T) {
	for _, v := range []int{0, session.MinRekeyInterval, session.DefaultRekeyInterval, session.MaxRekeyInterval} {
		cfg := actors.DefaultConfig()
		cfg.RekeyInterval = v
		if err := cfg.Validate(); err != nil {
			t.Errorf("RekeyInterval %d: %v", v, err)
		}
	}
	for _, v := range []int{-1, 1, session.MinRekeyInterval - 1, session.MaxRekeyInterval + 1, math.MaxInt} {
		cfg := actors.DefaultConfig()
		cfg.RekeyInterval = v
		err := cfg.Validate()
		if !errors.Is(err, actors.ErrInvalidConfig) || !strings.Contains(err.Error(), fmt.Sprintf("RekeyInterval (%d)", v)) ||
			!strings.Contains(err.Error(), fmt.Sprintf("%d..%d", session.MinRekeyInterval, session.MaxRekeyInterval)) {
			t.Errorf("RekeyInterval %d: Validate = %v, want ErrInvalidConfig naming the field and its bounds", v, err)
		}
	}
}
