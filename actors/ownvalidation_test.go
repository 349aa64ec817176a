package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/testkit"
)

// byPrefix judges a message by its text's prefix: "bad" rejected, "skip" ignored, the rest accepted.
func byPrefix(_ context.Context, d *gossip.Delivery) gossip.Verdict {
	s := d.Payload.(*wrapperspb.StringValue).GetValue()
	switch {
	case strings.HasPrefix(s, "bad"):
		return gossip.Reject
	case strings.HasPrefix(s, "skip"):
		return gossip.Ignore
	}
	return gossip.Accept
}

// A node's own publication passes the validators of its subscriptions to the topic, as a peer's message does: a
// message they reject or ignore fails Publish and is neither delivered nor sent. It used to be published unchecked:
// the node's own handler got what its validator forbids, and after three such messages its peer, running the same
// validator, banned it.
func TestOwnPublicationsPassTheTopicsValidators(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	a, b := nw.Nodes[0], nw.Nodes[1]
	ctx := ctxTimeout(t, 20*time.Second)
	var mu sync.Mutex
	var gotA, gotB []string
	record := func(got *[]string) func(*gossip.Delivery) {
		return func(d *gossip.Delivery) {
			mu.Lock()
			defer mu.Unlock()
			*got = append(*got, d.Payload.(*wrapperspb.StringValue).GetValue())
		}
	}
	if _, err := a.Subscribe(ctx, "t", record(&gotA), gossip.WithValidator(byPrefix)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, "t", record(&gotB), gossip.WithValidator(byPrefix)); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctx, "t", 1); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"bad 1", "bad 2", "bad 3", "bad 4"} {
		if _, err := a.Publish(ctx, "t", wrapperspb.String(s)); !errors.Is(err, gossip.ErrRejected) {
			t.Fatalf("Publish(%q): %v, want gossip.ErrRejected", s, err)
		}
	}
	if _, err := a.Publish(ctx, "t", wrapperspb.String("skip 1")); !errors.Is(err, gossip.ErrIgnored) {
		t.Fatalf("Publish(skip): %v, want gossip.ErrIgnored", err)
	}
	if _, err := a.Publish(ctx, "t", wrapperspb.String("good")); err != nil {
		t.Fatalf("Publish(good): %v", err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(gotA) == 1 && len(gotB) == 1
	}, "the good message at a's and b's handlers")
	mu.Lock()
	defer mu.Unlock()
	if gotA[0] != "good" || gotB[0] != "good" {
		t.Fatalf("delivered: a %q, b %q; want only the good message", gotA, gotB)
	}
	if len(b.Bans()) != 0 || !b.Connected(a.ID()) {
		t.Fatalf("b banned a (%v) or dropped it (connected: %v)", b.Bans(), b.Connected(a.ID()))
	}
	st, err := a.GossipStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.OwnRejected != 5 {
		t.Fatalf("OwnRejected = %d, want 5", st.OwnRejected)
	}
}
