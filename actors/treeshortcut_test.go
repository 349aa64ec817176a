package actors_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// lineBelowRoot starts n nodes in a line whose first node has the smallest id, so that it is the tree's root
// (every node has fewer than four topic peers, so all ranks are equal) and the last node is n-1 hops from it.
func lineBelowRoot(t *testing.T, n int, configure func(i int, cfg *actors.Config)) *testkit.Network {
	t.Helper()
	ids := make([]*session.Identity, n)
	for i := range ids {
		id, err := session.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	slices.SortFunc(ids, func(a, b *session.Identity) int {
		x, y := a.NodeID(), b.NodeID()
		return bytes.Compare(x[:], y[:])
	})
	return gossipNetwork(t, n, testkit.Line(n), func(i int, cfg *actors.Config) {
		cfg.Identity = ids[i]
		cfg.Gossip.Router.TreeShortcutInterval = 200 * time.Millisecond
		if configure != nil {
			configure(i, cfg)
		}
	})
}

// waitShortcut waits until node last of nw is connected to node via and two hops from the root through it.
func waitShortcut(t *testing.T, nw *testkit.Network, last, via int) {
	t.Helper()
	testkit.WaitFor(t, 15*time.Second, func() bool {
		info, err := nw.Nodes[last].Topic(ctxTimeout(t, time.Second), "t")
		return err == nil && info.Root == nw.Nodes[0].ID() && info.Dist == 2 && info.Parent == nw.Nodes[via].ID()
	}, "node %d did not take node %d, a hop from the root, as its parent", last, via)
	// And the parent took the graft: until it has, it pushes to its old children only (a loaded host's run got the
	// root's message to the last node over the old path, a hop longer).
	testkit.WaitFor(t, 15*time.Second, func() bool {
		info, err := nw.Nodes[via].Topic(ctxTimeout(t, time.Second), "t")
		return err == nil && slices.Contains(info.TreeLinks, nw.Nodes[last].ID())
	}, "node %d did not take node %d as its child", via, last)
	if !nw.Nodes[last].Connected(nw.Nodes[via].ID()) {
		t.Fatal("the shortcut's connection is gone")
	}
}

func TestTreeShortcutLiftsTheNodeThreeHopsFromTheRoot(t *testing.T) {
	nw := lineBelowRoot(t, 4, nil)
	// Only the address book knows node 1: discovery is off.
	nw.Nodes[3].AddAddress(nw.Nodes[1].ID(), nw.Nodes[1].Addr().Addr)
	boxes := subscribeAll(t, nw.Nodes, "t")
	waitShortcut(t, nw, 3, 1)
	st, err := nw.Nodes[3].GossipStats(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if st.Router.TreeShortcuts != 1 {
		t.Errorf("node 3 asked for %d shortcuts, want 1", st.Router.TreeShortcuts)
	}
	// The shortcut carries the root's messages: they reach node 3 in two hops.
	id, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("x"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return boxes[3].times(id) == 1 }, "node 3 got the message")
	if d := boxes[3].get(id); d.Hops != 2 {
		t.Errorf("node 3 got the message in %d hops, want 2", d.Hops)
	}
}

func TestTreeShortcutWorksWithDiscoveryOn(t *testing.T) {
	nw := lineBelowRoot(t, 4, func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = false
		cfg.Bootstrap.TargetOutbound = 0 // only the line's connections
		// Nor topic discovery's: with fewer than Dlo topic peers each, the nodes would look the others up.
		cfg.Gossip.Router.TopicRegisterInterval, cfg.Gossip.Router.TopicSearchInterval = 0, 0
	})
	subscribeAll(t, nw.Nodes, "t")
	waitShortcut(t, nw, 3, 1)
}
