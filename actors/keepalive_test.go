package actors

import (
	"context"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestKeepalivePingsOnlyAQuietConnection checks the keepalive: while a's messages flow to b, b (which receives
// them) pings only to refresh its RTT, and a (which receives nothing but pongs) pings every PingInterval; once the
// traffic stops, both ping. The connection outlives two IdleTimeouts in each phase, and both ends measure an RTT.
func TestKeepalivePingsOnlyAQuietConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Each phase lasts 40 PingIntervals and two IdleTimeouts: with an IdleTimeout of 8 intervals (400 ms) and five
	// of them a phase, a loaded CI machine under the race detector once stalled the pongs past it and the quiet
	// connection closed; a stall past a second is rarer, and two IdleTimeouts still show the pings keep it open.
	const ping, idle = 50 * time.Millisecond, time.Second
	const phase = 40 * ping
	start := func() *Node {
		return startTestNode(t, ctx, func(cfg *Config) {
			cfg.DisableDiscovery = true
			cfg.PingInterval, cfg.IdleTimeout = ping, idle
		})
	}
	a, b := start(), start()
	if _, err := b.Register("sink/1", actor.PropsFromFunc(func(actor.Context) {})); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	pa := a.peers.get(b.ID())
	pollUntil(t, ctx, func() bool { return b.peers.get(a.ID()) != nil }, "b never registered the connection")
	pb := b.peers.get(a.ID())
	same := func(phase string) {
		t.Helper()
		if a.peers.get(b.ID()) != pa || b.peers.get(a.ID()) != pb {
			t.Fatalf("%s: the connection closed (a connected: %v, b connected: %v)", phase, a.Connected(b.ID()), b.Connected(a.ID()))
		}
	}

	// Busy: a sends every 5 ms for 40 PingIntervals (two IdleTimeouts).
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for end := time.Now().Add(phase); time.Now().Before(end); <-tick.C {
		if err := a.Send(ctx, b.ID(), "sink/1", wrapperspb.String("x")); err != nil {
			t.Fatal(err)
		}
	}
	same("busy")
	busyA, busyB := pa.kaNonce.Load(), pb.kaNonce.Load()
	// b: its first ping (no RTT yet) and one per rttRefreshPings intervals, 7 in 40 intervals. Before pings
	// depended on the traffic, b sent one every interval, like a.
	if busyA < 10 || busyB > 10 {
		t.Fatalf("pings in 40 intervals: a (receiving nothing) %d, want >= 10; b (receiving) %d, want <= 10", busyA, busyB)
	}

	// Quiet: nothing is sent for 40 PingIntervals (two IdleTimeouts); both ends ping, and the connection holds.
	for end := time.Now().Add(phase); time.Now().Before(end); <-tick.C {
		same("quiet")
	}
	if quietA, quietB := pa.kaNonce.Load()-busyA, pb.kaNonce.Load()-busyB; quietA < 10 || quietB < 10 {
		t.Fatalf("pings in 40 quiet intervals: a %d, b %d, want >= 10 each", quietA, quietB)
	}
	if pa.rtt() <= 0 || pb.rtt() <= 0 {
		t.Fatalf("RTT: a %v, b %v, want both measured", pa.rtt(), pb.rtt())
	}
}
