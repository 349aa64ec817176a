package actors_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// Ordinary mistakes of an application get a clear error rather than a panic, a hang or a wrong error (an audit of
// the public API): a zero Identity made NewNode panic, a second Start's error could not be matched, Publish(nil)
// was not ErrBadPayload as Send(nil) is, SubscribeEvents(nil) made every event panic, and Connect dialed an empty
// address.
func TestAPIMisuseGetsClearErrors(t *testing.T) {
	cfg := actors.DefaultConfig()
	cfg.Identity = &session.Identity{}
	if _, err := actors.NewNode(cfg); !errors.Is(err, actors.ErrInvalidConfig) {
		t.Fatalf("NewNode with a zero Identity: %v, want ErrInvalidConfig", err)
	}
	n := testkit.NewNetwork(t, 1).Nodes[0]
	if err := n.Start(context.Background()); !errors.Is(err, actors.ErrAlreadyStarted) {
		t.Fatalf("a second Start: %v, want ErrAlreadyStarted", err)
	}
	if _, err := n.Publish(ctxTimeout(t, time.Second), "t", nil); !errors.Is(err, actors.ErrBadPayload) {
		t.Fatalf("Publish(nil): %v, want ErrBadPayload", err)
	}
	if _, err := n.SubscribeEvents(nil); err == nil {
		t.Fatal("SubscribeEvents(nil) accepted")
	}
	peer, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Connect(ctxTimeout(t, time.Second), session.PeerAddr{ID: peer.NodeID()}, true); !errors.Is(err, session.ErrBadPeerAddr) {
		t.Fatalf("Connect to an empty address: %v, want ErrBadPeerAddr", err)
	}
}

// ReplyError(nil) answers with an application error without text: it panicked the protocol actor, and the
// requester waited for its timeout.
func TestReplyErrorWithANilError(t *testing.T) {
	nw := testkit.NewNetwork(t, 2)
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "nil/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok {
			_ = in.ReplyError(nil)
		}
	}))
	nw.Connect(0, 1)
	_, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "nil/1", wrapperspb.String("x"))
	var re *actors.RemoteError
	if !errors.As(err, &re) || re.Message != "" {
		t.Fatalf("request answered with ReplyError(nil): %v, want a RemoteError without text", err)
	}
	if n := b.Stats().ActorRestarts; n != 0 {
		t.Fatalf("%d actor restarts, want none", n)
	}
}

// ActorSystem may be called while Start runs (all of the node's methods are safe for concurrent use): it read the
// field Start writes without the lock.
func TestActorSystemDuringStart(t *testing.T) {
	n := unstartedNode(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			_ = n.ActorSystem()
		}
	}()
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if n.ActorSystem() == nil {
		t.Fatal("no actor system after Start")
	}
}
