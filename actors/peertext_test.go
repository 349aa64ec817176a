package actors_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// A peer's error reply reached the requester whole: up to MaxMessageSize of text the peer chose, escape sequences
// and line breaks included, which applications (and the admin API, at warn) log. It is clipped and its control
// characters replaced, as a goodbye's detail is (an audit's finding).
func TestAPeersErrorReplyTextIsClippedAndDefused(t *testing.T) {
	nw := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	n := nw.Nodes[0]
	sc, peer := rawPeer(t, n)
	long := "\x1b[2J\x1b]0;pwned\x07\n" + strings.Repeat("A", 500<<10)
	go func() {
		for {
			b, err := sc.ReadMessage()
			if err != nil {
				return
			}
			env := &messages.Envelope{}
			if proto.Unmarshal(b, env) != nil || env.GetDirect().GetKind() != messages.DirectKind_DIRECT_KIND_REQUEST {
				continue
			}
			d := env.GetDirect()
			reply, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
				Protocol: d.GetProtocol() + long, Kind: messages.DirectKind_DIRECT_KIND_ERROR, RequestId: d.GetRequestId(),
				Error: &messages.RemoteError{Code: messages.ErrorCode_ERROR_CODE_APPLICATION, Message: long},
			}}})
			if err != nil || sc.WriteMessages(reply) != nil {
				return
			}
		}
	}()
	_, err := n.Request(ctxTimeout(t, 10*time.Second), peer, "echo/1", wrapperspb.String("hi"))
	var remote *actors.RemoteError
	if !errors.As(err, &remote) {
		t.Fatalf("Request: %v, want a *RemoteError", err)
	}
	if len(err.Error()) > 1024 || strings.ContainsAny(err.Error(), "\x1b\x07\n") {
		t.Fatalf("a peer's error reply reached the caller as %d bytes, control characters: %v",
			len(err.Error()), strings.ContainsAny(err.Error(), "\x1b\x07\n"))
	}
	if !strings.Contains(remote.Message, "[2J") {
		t.Fatalf("the message lost its printable text: %q", remote.Message)
	}
}

// A subscription whose handler fell behind logged a warning for every delivery its full queue dropped: any
// publisher made the node write a line per message (an audit's finding). The first is logged, then one line every
// few seconds with the count.
func TestASubscribersFullQueueIsNotLoggedPerMessage(t *testing.T) {
	var logs testkit.SyncBuffer
	release := make(chan struct{})
	nw := testkit.NewNetwork(t, 2, testkit.WithLogger(zerolog.New(&logs)), testkit.WithLogLevel(zerolog.InfoLevel),
		testkit.WithConfig(func(i int, cfg *actors.Config) {
			cfg.DisableDiscovery = true
			fastGossip(cfg)
			if i == 1 {
				cfg.Gossip.DeliveryBuffer = 8
			}
		}))
	t.Cleanup(func() { close(release) })
	a, b := nw.Nodes[0], nw.Nodes[1]
	if _, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "t", func(*gossip.Delivery) { <-release }); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subscribe(ctxTimeout(t, 5*time.Second), "t", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	nw.ConnectAll([][2]int{{0, 1}})
	waitMeshes(t, nw.Nodes, "t", 1)
	const published = 300
	for k := range published {
		if _, err := a.Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String(fmt.Sprint("m", k))); err != nil {
			t.Fatalf("publish %d: %v", k, err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		st, err := b.GossipStats(ctxTimeout(t, 5*time.Second))
		return err == nil && st.DeliveryDropped >= 100
	}, "b to drop what its queue could not hold")
	if got := strings.Count(logs.String(), "subscriber queue full"); got == 0 || got > 2 {
		t.Fatalf("%d warnings about the full queue for %d dropped deliveries; want one, two at most", got, published)
	}
}
