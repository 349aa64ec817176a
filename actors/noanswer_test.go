package actors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// askerOfGoneNodes returns a node that knows two others, which have closed: every node it would ask is down.
func askerOfGoneNodes(t *testing.T, configure ...func(*actors.Config)) (asker *actors.Node, gone []*actors.Node) {
	t.Helper()
	nw := sparseNetwork(t, 3, configure...)
	asker, gone = nw.Nodes[2], nw.Nodes[:2]
	testkit.WaitFor(t, 10*time.Second, func() bool {
		rt, err := asker.RoutingTable(ctxTimeout(t, time.Second))
		return err == nil && len(rt.Entries) >= 2
	}, "the asker to know both others")
	for _, n := range nw.Nodes[:2] {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return len(asker.Peers()) == 0 }, "the connections to close")
	return asker, gone
}

// FindTopicPeers and FindClosest fail with routing.ErrNoAnswer when no node they asked answered, and Lookup's
// ErrNotFound wraps it: until stop 54 the first two succeeded with nothing, as if the topic had no registration or
// the key no node (an audit's finding). Lookup of a node whose record the table held still answers its address.
func TestDiscoveryCallsNoNodeAnsweredFail(t *testing.T) {
	asker, gone := askerOfGoneNodes(t)
	ctx := ctxTimeout(t, 20*time.Second)
	found, err := asker.FindTopicPeers(ctx, "some topic")
	if !errors.Is(err, routing.ErrNoAnswer) {
		t.Fatalf("FindTopicPeers with every node asked down: %v, %v; want routing.ErrNoAnswer", found, err)
	}
	res, err := asker.FindClosest(ctx, routing.TopicKey("x"))
	if !errors.Is(err, routing.ErrNoAnswer) || res.Queried == 0 {
		t.Fatalf("FindClosest with every node asked down: %d found after %d requests, %v; want routing.ErrNoAnswer", len(res.Closest), res.Queried, err)
	}
	unknown, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asker.Lookup(ctx, unknown.NodeID()); !errors.Is(err, actors.ErrNotFound) || !errors.Is(err, routing.ErrNoAnswer) {
		t.Fatalf("Lookup with every node asked down: %v; want actors.ErrNotFound wrapping routing.ErrNoAnswer", err)
	}
	if addr, err := asker.Lookup(ctx, gone[0].ID()); err != nil || addr != gone[0].Addr() {
		t.Fatalf("Lookup of a node the table knows, nobody answering: %v, %v; want its known address %v", addr, err, gone[0].Addr())
	}
}

// The relay's topic searches that no node answered count as failed lookups (gossip's TopicLookupsFailed, metric
// topic_lookups_failed), as its registrations did: until stop 54 the peer manager reported them as successes
// unless the lookup also registered. Registrations are off here, so that every lookup is a search alone.
func TestATopicSearchNoNodeAnsweredFailed(t *testing.T) {
	asker, _ := askerOfGoneNodes(t, func(cfg *actors.Config) { cfg.Gossip.Router.TopicRegisterInterval = 0 })
	if _, err := asker.Subscribe(ctxTimeout(t, 5*time.Second), "alone", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	var st gossip.Stats
	if err := testkit.Poll(context.Background(), 20*time.Second, func() bool {
		st = routerStats(t, asker)
		return st.TopicSearches >= 2 && st.TopicRegistrations == 0 && st.TopicLookupsFailed >= 2
	}); err != nil {
		t.Fatalf("%d searches and %d registrations asked, %d lookups failed; want the searches failed", st.TopicSearches, st.TopicRegistrations, st.TopicLookupsFailed)
	}
}
