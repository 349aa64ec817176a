package actors_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// A connection answers pings up to a rate (20 a second, 100 at once) and drops the rest unanswered: each pong is
// queued, and a peer that pinged without end while reading slowly made the node queue millions of them (hundreds
// of MB on one connection). The error reply to a request the peer sends after its pings comes after every pong the
// node will send for them (one reader, one queue), so the pongs counted before it are all there are.
func TestPingFloodIsAnsweredOnlyUpToTheRate(t *testing.T) {
	nw := testkit.NewNetwork(t, 1)
	sc, _ := rawPeer(t, nw.Nodes[0])
	ping, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	const sent = 2000
	pings := make([][]byte, sent)
	for i := range pings {
		pings[i] = ping
	}
	barrier, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: "none/1", Kind: messages.DirectKind_DIRECT_KIND_REQUEST, RequestId: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := sc.WriteMessages(append(pings, barrier)...); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	pongs := 0
	for {
		b, err := sc.ReadMessage()
		if err != nil {
			t.Fatalf("after %d pongs: %v", pongs, err)
		}
		var env messages.Envelope
		if err := proto.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if env.GetPong() != nil {
			pongs++
		}
		if d := env.GetDirect(); d != nil && d.GetRequestId() == 7 {
			break
		}
	}
	// The burst, and the rate over the time the pings took to arrive (a second of slack).
	most := 100 + int(20*(time.Since(start).Seconds()+1))
	if pongs == 0 || pongs > most {
		t.Fatalf("%d pongs for %d pings, want 1 to %d", pongs, sent, most)
	}
}

// dialRaw opens a connection to n and handshakes with a fresh identity; it returns the session or the error.
func dialRaw(t *testing.T, n *actors.Node) (*session.Conn, error) {
	t.Helper()
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", n.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sc, err := session.Handshake(ctx, raw, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, true, n.ID())
	if err != nil {
		_ = raw.Close()
		return nil, err
	}
	t.Cleanup(func() { _ = sc.Close() })
	testkit.WaitFor(t, 5*time.Second, func() bool { return n.Connected(id.NodeID()) }, "raw peer connected")
	return sc, nil
}

// One IP holds at most MaxInboundPerIP inbound connections: identities cost nothing, and one host dialing with
// fresh ones at the throttle's rate held every inbound slot within seconds (50 of 50 in 8.5 s), refusing honest
// newcomers for as long as it liked. A slot it gives up is free for the next connection.
func TestOneIPHoldsAtMostMaxInboundPerIP(t *testing.T) {
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.ExemptLoopbackThrottle = false
		cfg.InboundPerIPBurst = 100 // the rate is not what this test is about
		cfg.MaxInboundPerIP = 3
	}))
	victim := nw.Nodes[0]
	var held []*session.Conn
	for range 3 {
		sc, err := dialRaw(t, victim)
		if err != nil {
			t.Fatalf("connection %d of 3: %v", len(held)+1, err)
		}
		held = append(held, sc)
	}
	if _, err := dialRaw(t, victim); err == nil {
		t.Fatal("a 4th connection from the same IP was taken, MaxInboundPerIP is 3")
	}
	_ = held[0].Close()
	testkit.WaitFor(t, 5*time.Second, func() bool { return len(victim.Peers()) == 2 }, "the closed connection gone")
	if _, err := dialRaw(t, victim); err != nil {
		t.Fatalf("a connection once one of the 3 closed: %v", err)
	}
}
