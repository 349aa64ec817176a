package gossip

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/actormesh/actormesh/session"
)

// The node joins at most MaxPeerTopics topics: one more fails with ErrLimit, joining one again does not, and a
// topic left makes room.
func TestJoinPastMaxPeerTopicsFails(t *testing.T) {
	r := newTestRouter(t, DefaultConfig())
	max := DefaultConfig().MaxPeerTopics
	for i := range max {
		join(t, r, t0, fmt.Sprint("t", i))
	}
	if _, err := r.Join(t0, "one-more"); !errors.Is(err, ErrLimit) {
		t.Fatalf("Join of topic %d: %v, want ErrLimit", max+1, err)
	}
	if _, err := r.Join(t0, "t0"); err != nil {
		t.Fatalf("Join of a topic joined already: %v", err)
	}
	if _, err := r.Join(t0, fmt.Sprint("x", string(make([]byte, 300)))); !errors.Is(err, ErrTopicTooLong) {
		t.Fatalf("Join of a topic over MaxTopicLength: %v, want ErrTopicTooLong", err)
	}
	r.Leave(t0, "t0")
	if _, err := r.Join(t0, "one-more"); err != nil {
		t.Fatalf("Join after a Leave: %v", err)
	}
}

// A peer at MaxPeerTopics tracked topics that subscribes to a topic the node joined is tracked in it: one of its
// topics the node has not joined makes room. A topic the node has not joined is still refused.
func TestAPeersJoinedTopicIsTrackedPastMaxPeerTopics(t *testing.T) {
	r, max := routerWithPeerAtMax(t, "z-blocks")
	if err := r.PeerSubscribed(nid(1), "y-other"); !errors.Is(err, ErrLimit) {
		t.Fatalf("a topic not joined past MaxPeerTopics: %v, want ErrLimit", err)
	}
	if err := r.PeerSubscribed(nid(1), "z-blocks"); err != nil {
		t.Fatalf("the node's topic past MaxPeerTopics: %v", err)
	}
	if got := r.TopicPeers("z-blocks"); !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("peers of the node's topic %v, want peer 1", got)
	}
	if topics := r.PeerTopics(nid(1)); len(topics) != max || !slices.Contains(topics, "z-blocks") {
		t.Fatalf("peer 1 tracked in %d topics (z-blocks among them: %v), want %d", len(topics), slices.Contains(topics, "z-blocks"), max)
	}
	if !r.SharesJoinedTopic(nid(1)) {
		t.Fatal("peer 1 shares no joined topic")
	}
	// The evicted topic is forgotten: no topic is left with a peer that is not tracked in it.
	known := 0
	for i := range max {
		known += len(r.TopicPeers(fmt.Sprintf("a-%02d", i)))
	}
	if known != max-1 {
		t.Fatalf("peer 1 is a peer of %d of its first topics, want %d", known, max-1)
	}
}

// After a heartbeat at which the node joined a topic, the peers whose subscriptions went untracked (refused,
// evicted, left unread by the shell) are asked for them again (Output.Hello), once; the other peers are not.
func TestAJoinAsksAgainThePeersWhoseSubscriptionsWentUntracked(t *testing.T) {
	r, _ := routerWithPeerAtMax(t)
	_ = r.PeerSubscribed(nid(1), "refused") // past MaxPeerTopics
	addPeers(t, r, "a-00", 2, 3)
	r.MissedSubscriptions(nid(3), 1)
	if out := r.Heartbeat(t0); len(out.Hello) != 0 {
		t.Fatalf("hello again to %v with no topic joined", out.Hello)
	}
	join(t, r, t0, "refused")
	join(t, r, t0, "another")
	if out := r.Heartbeat(t0); !slices.Equal(out.Hello, sorted([]session.NodeID{nid(1), nid(3)})) {
		t.Fatalf("hello again to %v after the joins, want peers 1 and 3", out.Hello)
	}
	if out := r.Heartbeat(t0); len(out.Hello) != 0 {
		t.Fatalf("hello again to %v at the heartbeat after", out.Hello)
	}
}

// Only a topic the node joined makes room among a peer's MaxPeerTopics: a subscription to a topic other peers are in
// and the node has not joined is refused, evicting nothing. The topic evicted for a joined one counts as missed:
// the node's next join asks the peer for its subscriptions again (Output.Hello).
func TestOnlyAJoinedTopicEvictsAndTheEvictedOneIsAskedAgain(t *testing.T) {
	r, max := routerWithPeerAtMax(t, "z-blocks")
	addPeers(t, r, "y-other", 2, 2)
	if out := r.Heartbeat(t0); len(out.Hello) != 0 {
		t.Fatalf("hello again to %v before any subscription went untracked", out.Hello)
	}
	if err := r.PeerSubscribed(nid(1), "z-blocks"); err != nil {
		t.Fatal(err)
	}
	join(t, r, t0, "another")
	if out := r.Heartbeat(t0); !slices.Equal(out.Hello, []session.NodeID{nid(1)}) {
		t.Fatalf("hello again to %v after a join, want peer 1, one of whose topics was evicted", out.Hello)
	}
	if err := r.PeerSubscribed(nid(1), "y-other"); !errors.Is(err, ErrLimit) {
		t.Fatalf("a known topic not joined past MaxPeerTopics: %v, want ErrLimit", err)
	}
	if got := r.TopicPeers("y-other"); !slices.Equal(got, []session.NodeID{nid(2)}) {
		t.Fatalf("peers of y-other %v, want peer 2 alone", got)
	}
	if topics := r.PeerTopics(nid(1)); len(topics) != max || !slices.Contains(topics, "z-blocks") {
		t.Fatalf("peer 1 in %d topics (z-blocks among them: %v), want %d", len(topics), slices.Contains(topics, "z-blocks"), max)
	}
}

// A subscription repeated is tracked once, and a peer at MaxPeerTopics repeating one of its topics is not refused.
func TestARepeatedSubscriptionIsTrackedOnce(t *testing.T) {
	r, _ := routerWithPeerAtMax(t)
	if err := r.PeerSubscribed(nid(1), "a-00"); err != nil {
		t.Fatalf("a repeated subscription at MaxPeerTopics: %v", err)
	}
	if got := r.TopicPeers("a-00"); !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("peers of a-00 after a repeated subscription: %v, want peer 1 once", got)
	}
}

// A peer asked for its subscriptions again (Output.Hello) is asked again at a later join only if some of its
// answer, or of its subscriptions since, went untracked: once its whole list fits, it is not asked any more. Until
// stop 60 a peer once in more than MaxPeerTopics topics was asked at every heartbeat after a join, for good.
func TestAPeerIsAskedAgainOnlyWhileSomeOfItsListGoesUntracked(t *testing.T) {
	r := newTestRouter(t, DefaultConfig())
	max := DefaultConfig().MaxPeerTopics
	list := make([]string, 0, max+1) // the peer's topics: max+1, the last refused
	for i := range max {
		list = append(list, fmt.Sprintf("a-%02d", i))
	}
	list = append(list, "b-extra")
	if err := r.AddPeer(nid(1)); err != nil {
		t.Fatal(err)
	}
	answer := func() { // the peer's whole list, as it answers the node's hello
		t.Helper()
		for _, topic := range list {
			if err := r.PeerSubscribed(nid(1), topic); err != nil && !errors.Is(err, ErrLimit) {
				t.Fatal(err)
			}
		}
	}
	joinAndBeat := func(topic string) []session.NodeID {
		join(t, r, t0, topic)
		return r.Heartbeat(t0).Hello
	}
	answer()
	if got := joinAndBeat("j1"); !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("hello again to %v after the first join, want peer 1, one of whose topics was refused", got)
	}
	answer() // b-extra refused again
	if got := joinAndBeat("j2"); !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("hello again to %v after the second join, want peer 1, whose answer went untracked in part", got)
	}
	answer()
	// The peer leaves two topics, and the node cannot tell that the rest fit: it asks once more.
	for _, topic := range []string{"a-00", "b-extra"} {
		r.PeerUnsubscribed(t0, nid(1), topic)
	}
	list = list[1:max]
	if got := joinAndBeat("j3"); !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("hello again to %v after the third join, want peer 1", got)
	}
	answer() // fits
	if got := joinAndBeat("j4"); len(got) != 0 {
		t.Fatalf("hello again to %v after a join, want none: the peer's whole list is tracked", got)
	}
	// A subscription refused again marks it again.
	if err := r.PeerSubscribed(nid(1), "c-1"); err != nil {
		t.Fatal(err)
	}
	if err := r.PeerSubscribed(nid(1), "c-2"); !errors.Is(err, ErrLimit) {
		t.Fatalf("subscription past MaxPeerTopics: %v, want ErrLimit", err)
	}
	if got := joinAndBeat("j5"); !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("hello again to %v after a join, want peer 1, whose new subscription was refused", got)
	}
}

// Stats.SubscriptionsUntracked counts the subscriptions refused and evicted past MaxPeerTopics and those the shell
// left unread (MissedSubscriptions), not a repeated subscription to a tracked topic nor what an unknown peer or
// a count of none leaves; a count of none marks no peer missed.
func TestSubscriptionsUntrackedCountsRefusedEvictedAndUnread(t *testing.T) {
	r, _ := routerWithPeerAtMax(t, "z-blocks")
	addPeers(t, r, "a-00", 2, 2)
	untracked := func() uint64 { return r.Stats().SubscriptionsUntracked }
	if err := r.PeerSubscribed(nid(1), "a-00"); err != nil || untracked() != 0 {
		t.Fatalf("a repeated subscription: %v, %d untracked, want none", err, untracked())
	}
	if err := r.PeerSubscribed(nid(1), "y-other"); !errors.Is(err, ErrLimit) || untracked() != 1 {
		t.Fatalf("a refused subscription: %v, %d untracked, want ErrLimit and 1", err, untracked())
	}
	if err := r.PeerSubscribed(nid(1), "z-blocks"); err != nil || untracked() != 2 {
		t.Fatalf("a subscription evicting another: %v, %d untracked, want 2", err, untracked())
	}
	r.MissedSubscriptions(nid(1), 5)
	r.MissedSubscriptions(nid(9), 5) // unknown
	r.MissedSubscriptions(nid(2), 0)
	if untracked() != 7 {
		t.Fatalf("%d untracked after 5 left unread, want 7", untracked())
	}
	join(t, r, t0, "another")
	if got := r.Heartbeat(t0).Hello; !slices.Equal(got, []session.NodeID{nid(1)}) {
		t.Fatalf("hello again to %v after a join, want peer 1 alone (none of peer 2's went untracked)", got)
	}
}

// routerWithPeerAtMax returns a router with the default config that joined the topics joined, and with peer 1
// subscribed to MaxPeerTopics topics a-00, a-01, ... (none of them joined), and MaxPeerTopics.
func routerWithPeerAtMax(t *testing.T, joined ...string) (*Router, int) {
	t.Helper()
	r := newTestRouter(t, DefaultConfig())
	max := DefaultConfig().MaxPeerTopics
	for _, topic := range joined {
		join(t, r, t0, topic)
	}
	for i := range max {
		addPeers(t, r, fmt.Sprintf("a-%02d", i), 1, 1)
	}
	return r, max
}
