package actors_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
)

// subscribeTopics subscribes node to each topic, a box each for those boxes has room for (nil: none).
func subscribeTopics(t *testing.T, node *actors.Node, topics []string, boxes map[string]*inbox) {
	t.Helper()
	for _, tp := range topics {
		handle := func(*gossip.Delivery) {}
		if b := boxes[tp]; b != nil {
			handle = b.handle
		}
		if _, err := node.Subscribe(ctxTimeout(t, 5*time.Second), tp, handle); err != nil {
			t.Fatalf("subscribe to %s: %v", tp, err)
		}
	}
}

// names returns n topic names of a prefix, in order.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

// waitTopicPeer waits until node sees a peer in each topic.
func waitTopicPeer(t *testing.T, node *actors.Node, topics []string, what string) {
	t.Helper()
	for _, tp := range topics {
		if err := node.WaitTopicPeers(ctxTimeout(t, 10*time.Second), tp, 1); err != nil {
			t.Fatalf("%s: no peer in %s: %v", what, tp, err)
		}
	}
}

// Two nodes in MaxPeerTopics topics each see each other in all of them and deliver on the last; a Subscribe to one
// more fails with gossip.ErrLimit and joins nothing. Until stop 58 a node took any number of topics, and those past
// the 64th of its sorted list had no peer anywhere.
func TestANodeInMaxPeerTopicsTopicsWorksOnAllAndRefusesOneMore(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	topics := names("subnet", gossip.DefaultConfig().MaxPeerTopics)
	last := topics[len(topics)-1]
	boxes := []*inbox{newInbox(), newInbox()}
	for i, n := range nw.Nodes {
		subscribeTopics(t, n, topics, map[string]*inbox{last: boxes[i]})
	}
	for i, n := range nw.Nodes {
		waitTopicPeer(t, n, topics, fmt.Sprint("node ", i))
	}
	id := publish(t, nw.Nodes[0], last, "on the last topic", true)
	waitDelivered(t, boxes, []int{1}, []gossip.MsgID{id}, 10*time.Second, "the last topic")

	_, err := nw.Nodes[0].Subscribe(ctxTimeout(t, 5*time.Second), "one-more", func(*gossip.Delivery) {})
	if !errors.Is(err, gossip.ErrLimit) {
		t.Fatalf("Subscribe past MaxPeerTopics: %v, want gossip.ErrLimit", err)
	}
	st, err := nw.Nodes[0].GossipStats(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Topics) != len(topics) {
		t.Fatalf("node 0 is in %d topics after the refused Subscribe, want %d", len(st.Topics), len(topics))
	}
}

// A node in MaxPeerTopics topics next to peers in many more (allowed a larger MaxPeerTopics), of which it shares a
// few sorted last in their hellos (the nodes connect once subscribed), past the entries read in full, sees them in its shared topics and delivers
// both ways. Until stop 58 it read the first 128 entries of a hello and tracked the first 64 topics, none of its own.
func TestANodeSeesPeersInManyTopicsInTheTopicsItShares(t *testing.T) {
	const peerTopics = 150
	nw := gossipNetwork(t, 3, nil, func(i int, cfg *actors.Config) {
		if i > 0 {
			cfg.Gossip.Router.MaxPeerTopics = 2 * peerTopics
		}
	})
	shared := names("z-shared", 4)
	own := names("m-own", gossip.DefaultConfig().MaxPeerTopics-len(shared))
	boxes := []*inbox{newInbox(), newInbox(), newInbox()}
	subscribeTopics(t, nw.Nodes[0], append(own, shared...), map[string]*inbox{shared[0]: boxes[0]})
	for i := 1; i <= 2; i++ {
		subscribeTopics(t, nw.Nodes[i], append(names("a-peer", peerTopics-len(shared)), shared...), map[string]*inbox{shared[0]: boxes[i]})
	}
	nw.ConnectAll([][2]int{{0, 1}, {0, 2}}) // the nodes learn each other's topics from their hellos
	if err := nw.Nodes[0].WaitTopicPeers(ctxTimeout(t, 10*time.Second), shared[0], 2); err != nil {
		t.Fatalf("node 0 sees fewer than its 2 peers in %s: %v", shared[0], err)
	}
	waitTopicPeer(t, nw.Nodes[0], shared, "node 0")
	from0 := publish(t, nw.Nodes[0], shared[0], "from node 0", true)
	from1 := publish(t, nw.Nodes[1], shared[0], "from node 1", true)
	waitDelivered(t, boxes, []int{0, 1, 2}, []gossip.MsgID{from0, from1}, 10*time.Second, "the shared topic")
}

// A peer in 70 topics said hello while the node was in none of them: the node tracked 64 of them. The node then
// joins the 70th (sorted last, refused at the hello) and sees the peer in it, asking it for its subscriptions again
// (Output.Hello). Until stop 58 a refused subscription was lost for good.
func TestANodeJoiningAPeersUntrackedTopicLaterSeesThePeerInIt(t *testing.T) {
	const peerTopics = 70
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, func(i int, cfg *actors.Config) {
		if i == 1 {
			cfg.Gossip.Router.MaxPeerTopics = 2 * peerTopics
		}
	})
	topics := names("t", peerTopics)
	boxes := []*inbox{newInbox(), newInbox()}
	last := topics[len(topics)-1]
	subscribeTopics(t, nw.Nodes[1], topics, map[string]*inbox{last: boxes[1]})
	waitTopicPeer(t, nw.Nodes[0], topics[:1], "node 0 before its join") // the hello came
	if info, err := nw.Nodes[0].Topic(ctxTimeout(t, 5*time.Second), last); err != nil || len(info.Peers) != 0 {
		t.Fatalf("before the join, node 0 sees %d peers in %s (%v), want none: the test's premise", len(info.Peers), last, err)
	}
	subscribeTopics(t, nw.Nodes[0], []string{last}, map[string]*inbox{last: boxes[0]})
	waitTopicPeer(t, nw.Nodes[0], []string{last}, "node 0 after its join")
	id := publish(t, nw.Nodes[0], last, "after the join", true)
	waitDelivered(t, boxes, []int{1}, []gossip.MsgID{id}, 10*time.Second, "the topic joined later")
}
