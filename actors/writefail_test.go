package actors_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// A peer that stops reading is disconnected as slow once a write times out: every message a Send queued for it is
// then either written or counted in QueueDropped, those of the batch whose write failed as those left in the queue.
// (A mutation audit: with the failed batch's messages not counted, no test failed.)
func TestTheMessagesOfAFailedWriteCountAsQueueDropped(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.WriteTimeout = 500 * time.Millisecond
		cfg.SendQueueBytes = 1 << 20
	})).Nodes[0]
	// A peer that reads nothing, with a receive buffer of 256 KiB (stuckPeer's of 4 KiB took the test 100 s to read
	// what the node's socket still held once closed).
	sc, stuckID := windowPeer(t, a, func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = c.(*net.TCPConn).SetReadBuffer(256 << 10)
		}
		return c, err
	}, session.Window{ProtocolMessages: 1 << 20, ProtocolBytes: 1 << 40, AppMessages: 1 << 20, AppBytes: 1 << 40})
	payload := wrapperspb.Bytes(make([]byte, 16<<10))
	sent := 0
	for a.Connected(stuckID) {
		if sent > 10000 {
			t.Fatal("the peer that reads nothing was never disconnected")
		}
		err := a.Send(ctxTimeout(t, 100*time.Millisecond), stuckID, "fill/1", payload)
		switch {
		case err == nil:
			sent++
		case errors.Is(err, actors.ErrOverloaded), errors.Is(err, actors.ErrPeerGone), errors.Is(err, actors.ErrSlowPeer),
			errors.Is(err, actors.ErrUnknownPeer): // held back, or the peer gone meanwhile
		default:
			t.Fatalf("send %d: %v", sent, err)
		}
	}
	slow := messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER.String()
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Stats().Disconnects[slow] == 1 }, "the peer disconnected as slow")
	received := 0
	for {
		_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := sc.ReadMessage()
		if err != nil {
			break // the connection's end, maybe within a frame the write cut
		}
		env := &messages.Envelope{}
		if proto.Unmarshal(b, env) == nil && env.GetDirect().GetProtocol() == "fill/1" {
			received++
		}
	}
	if dropped := a.Stats().QueueDropped; received+int(dropped) < sent || dropped == 0 {
		t.Fatalf("sent %d, the peer received %d, QueueDropped %d", sent, received, dropped)
	}
	t.Logf("sent %d, received %d, QueueDropped %d", sent, received, a.Stats().QueueDropped)
}
