package actors_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// readEnvelope reads sc's next envelope.
func readEnvelope(t *testing.T, sc *session.Conn) *messages.Envelope {
	t.Helper()
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := sc.ReadMessage()
	if err != nil {
		t.Fatalf("reading from the node: %v", err)
	}
	env := &messages.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		t.Fatal(err)
	}
	return env
}

// giveBack sends a WindowUpdate for one message of size payload bytes to protocol.
func giveBack(t *testing.T, sc *session.Conn, protocol string, size int) {
	t.Helper()
	b, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_WindowUpdate{WindowUpdate: &messages.WindowUpdate{
		Protocol: protocol, Messages: 1, Bytes: uint64(size),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(b); err != nil {
		t.Fatal(err)
	}
}

// A Send that waits for the peer's window counts once in SendsHeldBack however many grants it wakes at before the
// window holds it: here the peer gives back one message, which leaves too little room, and the send waits again
// (telling the peer so a second time) until the second is given back.
func TestASendWaitingThroughSeveralGrantsIsHeldBackOnce(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	sc, peer := windowPeer(t, a, session.TCPTransport{}.Dial, session.Window{ProtocolMessages: 16, ProtocolBytes: 30000, AppMessages: 16, AppBytes: 1 << 20})
	for range 2 {
		if err := a.Send(ctxTimeout(t, 5*time.Second), peer, "slow/1", wrapperspb.Bytes(make([]byte, 10000))); err != nil {
			t.Fatal(err)
		}
	}
	sizes := make([]int, 0, 2)
	for len(sizes) < 2 {
		if d := readEnvelope(t, sc).GetDirect(); d.GetProtocol() == "slow/1" {
			sizes = append(sizes, len(d.GetPayload().GetValue()))
		}
	}
	// 2 x 10 KB outstanding and 25 KB more is past the 30 KB window; with one given back, still past it.
	sent := make(chan error, 1)
	go func() {
		sent <- a.Send(ctxTimeout(t, 10*time.Second), peer, "slow/1", wrapperspb.Bytes(make([]byte, 25000)))
	}()
	awaitBlocked := func() {
		t.Helper()
		for readEnvelope(t, sc).GetWindowBlocked() == nil {
		}
	}
	awaitBlocked()
	giveBack(t, sc, "slow/1", sizes[0])
	awaitBlocked() // the send woke at the grant and waits again
	if n := a.Stats().SendsHeldBack; n != 1 {
		t.Fatalf("SendsHeldBack %d after one send waited twice, want 1", n)
	}
	giveBack(t, sc, "slow/1", sizes[1])
	if err := <-sent; err != nil {
		t.Fatalf("the send once the window held it: %v", err)
	}
	if s := a.Stats(); s.SendsHeldBack != 1 || s.SendsOverloaded != 0 {
		t.Fatalf("SendsHeldBack %d, SendsOverloaded %d; want 1 and 0", s.SendsHeldBack, s.SendsOverloaded)
	}
}

// A Send that took room in the peer's window and then failed because the node's send queue to the peer stayed
// half full (ErrOverloaded, counted in SendsOverloaded) gives that room back: it was never sent, so the peer will
// never give it back, and each such failure shrank the window for good; with a window of one message, the next
// send to the protocol waited for ever once the queue had drained.
func TestASendTheQueueHeldBackGivesItsWindowBack(t *testing.T) {
	a, mn := stallingNode(t)
	sc, peer := windowPeer(t, a, mn.NewTransport().Dial, session.Window{ProtocolMessages: 1, ProtocolBytes: 1 << 30, AppMessages: 1 << 20, AppBytes: 1 << 30})
	fillSendQueue(t, a, peer)
	if s := a.Stats(); s.SendsOverloaded != 1 || s.SendsHeldBack != 0 {
		t.Fatalf("SendsOverloaded %d, SendsHeldBack %d after a send the queue held back; want 1 and 0", s.SendsOverloaded, s.SendsHeldBack)
	}
	if err := a.Send(ctxTimeout(t, 100*time.Millisecond), peer, "leak/1", wrapperspb.Bytes(make([]byte, 100))); !errors.Is(err, actors.ErrOverloaded) {
		t.Fatalf("a send while the queue stays half full: %v, want ErrOverloaded", err)
	}
	// The peer reads all now, and gives nothing back: leak/1 has nothing outstanding.
	got := make(chan struct{})
	go func() {
		for {
			b, err := sc.ReadMessage()
			if err != nil {
				return
			}
			env := &messages.Envelope{}
			if proto.Unmarshal(b, env) == nil && env.GetDirect().GetProtocol() == "leak/1" {
				close(got)
				return
			}
		}
	}()
	if err := a.Send(ctxTimeout(t, 5*time.Second), peer, "leak/1", wrapperspb.Bytes(make([]byte, 100))); err != nil {
		t.Fatalf("a send to a protocol whose only earlier send failed: %v", err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the send never reached the peer")
	}
	if n := a.Stats().SendsHeldBack; n != 0 {
		t.Fatalf("SendsHeldBack %d: a send waited for a window only failed sends held", n)
	}
}

// A message whose payload the node cannot decode is given back to the sender's window at once, as any other
// message refused before an actor held it: the WindowUpdate goes out before the node reads the peer's next frame
// (here a ping, whose pong follows it), not once half the window was refused.
func TestAnUndecodablePayloadGivesItsWindowBackAtOnce(t *testing.T) {
	b := flowNetwork(t, nil).Nodes[1]
	gated(t, b, "slow/1")
	sc, _ := rawPeer(t, b)
	value := []byte{0xff} // a truncated varint: no StringValue
	bad, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: "slow/1", Kind: messages.DirectKind_DIRECT_KIND_ONEWAY,
		Payload: &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.StringValue", Value: value},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ping, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(bad, ping); err != nil {
		t.Fatal(err)
	}
	var given *messages.WindowUpdate
	for {
		env := readEnvelope(t, sc)
		if u := env.GetWindowUpdate(); u != nil && u.GetProtocol() == "slow/1" {
			given = u
		}
		if env.GetPong().GetNonce() == 7 {
			break
		}
	}
	if given == nil || given.GetMessages() != 1 || given.GetBytes() != uint64(len(value)) {
		t.Fatalf("given back before the pong: %v, want 1 message of %d bytes", given, len(value))
	}
	if n := b.Stats().InboundDropped["bad_payload"]; n != 1 {
		t.Fatalf("InboundDropped[bad_payload] %d, want 1", n)
	}
}

// fillSendQueue sends to peer, which reads nothing and advertised a window of one message per protocol, until the
// link and half of a's send queue are full: each message to a protocol of its own, until one fails with
// ErrOverloaded (counted in SendsOverloaded).
func fillSendQueue(t *testing.T, a *actors.Node, peer session.NodeID) {
	t.Helper()
	filler := wrapperspb.Bytes(make([]byte, 16<<10))
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("the send queue never filled")
		}
		err := a.Send(ctxTimeout(t, 200*time.Millisecond), peer, fmt.Sprintf("fill/%d", i), filler)
		if errors.Is(err, actors.ErrOverloaded) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// stallingNode starts a node on an in-memory network whose links hold 64 KiB, with a 128 KiB send queue and a write
// timeout long enough that a peer of mn's that reads nothing stalls its queue without being disconnected as slow.
func stallingNode(t *testing.T) (*actors.Node, *testkit.MemNetwork) {
	t.Helper()
	mn := testkit.NewMemNetwork(testkit.MemConfig{MaxBuffered: 64 << 10})
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.Transport = mn.NewTransport()
		cfg.MaxMessageSize = 64 << 10
		cfg.SendQueueBytes = 128 << 10
		cfg.WriteTimeout = 30 * time.Second
	})).Nodes[0]
	return a, mn
}
