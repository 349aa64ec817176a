package actors_test

import (
	"errors"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// nextRequest reads sc's envelopes until a request, and returns it.
func nextRequest(t *testing.T, sc *session.Conn) *messages.Direct {
	t.Helper()
	for {
		if d := readEnvelope(t, sc).GetDirect(); d.GetKind() == messages.DirectKind_DIRECT_KIND_REQUEST {
			return d
		}
	}
}

// respond writes a response to request id on protocol, carrying payload (none if nil).
func respond(t *testing.T, sc *session.Conn, protocol string, id uint64, payload proto.Message) {
	t.Helper()
	d := &messages.Direct{Protocol: protocol, Kind: messages.DirectKind_DIRECT_KIND_RESPONSE, RequestId: id}
	if payload != nil {
		a, err := anypb.New(payload)
		if err != nil {
			t.Fatal(err)
		}
		d.Payload = a
	}
	b, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: d}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(b); err != nil {
		t.Fatal(err)
	}
}

// pingBarrier pings the node over sc and reads until its pong: the node's reader has handled all sc sent before.
func pingBarrier(t *testing.T, sc *session.Conn) {
	t.Helper()
	const nonce = 0x5eed
	b, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: nonce}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(b); err != nil {
		t.Fatal(err)
	}
	for readEnvelope(t, sc).GetPong().GetNonce() != nonce {
	}
}

// A reply is taken only from the peer the request was sent to: another peer sending a response with the request's
// id (ids are counted node-wide from 1, easy to guess) is ignored, and the request gets its peer's reply. (A
// mutation audit: with the peer check removed, no test failed, and any peer could answer any request.)
func TestAReplyFromAnotherPeerDoesNotAnswerARequest(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	asked, askedID := rawPeer(t, a)
	other, _ := rawPeer(t, a)
	type result struct {
		reply proto.Message
		err   error
	}
	done := make(chan result, 1)
	go func() {
		reply, err := a.Request(ctxTimeout(t, 10*time.Second), askedID, "x/1", wrapperspb.String("hi"))
		done <- result{reply, err}
	}()
	req := nextRequest(t, asked)
	respond(t, other, "x/1", req.GetRequestId(), wrapperspb.String("forged"))
	pingBarrier(t, other)
	respond(t, asked, "x/1", req.GetRequestId(), wrapperspb.String("real"))
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if s, ok := r.reply.(*wrapperspb.StringValue); !ok || s.GetValue() != "real" {
		t.Fatalf("the request got %v, want the asked peer's reply", r.reply)
	}
}

// A response without a payload fails the request with ErrBadReply (and ErrBadPayload), rather than returning a
// nil reply with a nil error. (A mutation audit: with that case removed, no test failed.)
func TestAReplyWithoutPayloadIsABadReply(t *testing.T) {
	a := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true })).Nodes[0]
	sc, peer := rawPeer(t, a)
	done := make(chan error, 1)
	go func() {
		reply, err := a.Request(ctxTimeout(t, 10*time.Second), peer, "x/1", wrapperspb.String("hi"))
		if err == nil {
			err = errors.New("no error")
			if reply != nil {
				err = errors.New("a reply")
			}
		}
		done <- err
	}()
	respond(t, sc, "x/1", nextRequest(t, sc).GetRequestId(), nil)
	if err := <-done; !errors.Is(err, actors.ErrBadReply) || !errors.Is(err, actors.ErrBadPayload) {
		t.Fatalf("a response without payload: %v, want ErrBadReply and ErrBadPayload", err)
	}
}

// A Reply that finds the send queue to its requester half full fails with ErrOverloaded, answers the requester with
// an OVERLOADED error in its place, and counts in Stats.SendsOverloaded as a Send held back by the queue does. (A
// mutation audit: with the count removed, no test failed.)
func TestAReplyTheQueueHeldBackIsAnsweredOverloadedAndCounted(t *testing.T) {
	a, mn := stallingNode(t)
	replied := make(chan error, 1)
	register(t, a, "answer/1", actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*actors.Inbound); ok && in.IsRequest() {
			replied <- in.Reply(wrapperspb.String("answer"))
		}
	}))
	sc, peer := windowPeer(t, a, mn.NewTransport().Dial, session.Window{ProtocolMessages: 1, ProtocolBytes: 1 << 30, AppMessages: 1 << 20, AppBytes: 1 << 30})
	fillSendQueue(t, a, peer)
	if n := a.Stats().SendsOverloaded; n != 1 {
		t.Fatalf("SendsOverloaded %d after a send the queue held back, want 1", n)
	}
	payload, err := anypb.New(wrapperspb.String("question"))
	if err != nil {
		t.Fatal(err)
	}
	const id = 77
	req, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: "answer/1", Kind: messages.DirectKind_DIRECT_KIND_REQUEST, RequestId: id, Payload: payload,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteMessages(req); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-replied:
		if !errors.Is(err, actors.ErrOverloaded) {
			t.Fatalf("Reply with the queue half full: %v, want ErrOverloaded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached its actor")
	}
	if n := a.Stats().SendsOverloaded; n != 2 {
		t.Fatalf("SendsOverloaded %d after a reply the queue held back, want 2", n)
	}
	for { // the peer reads now: the request's answer is an OVERLOADED error
		d := readEnvelope(t, sc).GetDirect()
		if d.GetRequestId() != id {
			continue
		}
		if d.GetKind() != messages.DirectKind_DIRECT_KIND_ERROR || d.GetError().GetCode() != messages.ErrorCode_ERROR_CODE_OVERLOADED {
			t.Fatalf("the answer to a request whose reply the queue held back: %v, want an OVERLOADED error", d)
		}
		break
	}
}
