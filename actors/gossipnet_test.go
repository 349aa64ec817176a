package actors_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/testkit"
)

// Helpers of the gossip network tests (gossip_large_test.go). Those tests run tens of real nodes with gossip on the
// in-memory transport of testkit (1ms links), so that they stay fast under the race detector on two cores.
// Topologies are explicit (kept connections, no discovery), drawn from fixed seeds.

// memGossipNetwork starts n nodes on an in-memory network with 1ms links, without discovery, with fast gossip
// timings, connected along edges (edge {i, j}: i dials j and keeps the connection). It returns the network and
// each node's transport (to kill it). The message cache keeps 30 of the fast heartbeats (3 s, against 5 s with the
// defaults): at the default 5 beats it kept 0.5 s, and on a loaded machine under the race detector, where
// deliveries took up to 4 s, a node whose eager copy was lost in a tree change asked for it after every peer had
// dropped it (3 runs in 4 of TestGossipFiftyNodesDeliverEveryMessageExactlyOnce with six busy loops beside it).
func memGossipNetwork(t *testing.T, n int, edges [][2]int, configure func(i int, cfg *actors.Config)) (*testkit.Network, *testkit.MemNetwork, []*testkit.MemTransport) {
	t.Helper()
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: time.Millisecond}, Seed: 1})
	trs := make([]*testkit.MemTransport, n)
	for i := range trs {
		trs[i] = mn.NewTransport()
	}
	nw := gossipNetwork(t, n, edges, func(i int, cfg *actors.Config) {
		cfg.Transport = trs[i]
		cfg.Gossip.Router.HistoryLength = 30
		if configure != nil {
			configure(i, cfg)
		}
	})
	return nw, mn, trs
}

// randomGraph returns the edges of a connected graph over nodes first..first+n-1 with an average degree of about
// degree: a ring plus random chords, no self-loops nor repeated pairs.
func randomGraph(rng *rand.Rand, first, n, degree int) [][2]int {
	has := make(map[[2]int]bool)
	var edges [][2]int
	add := func(a, b int) bool {
		k := [2]int{min(a, b), max(a, b)}
		if a == b || has[k] {
			return false
		}
		has[k] = true
		edges = append(edges, [2]int{first + a, first + b})
		return true
	}
	for i := range n {
		add(i, (i+1)%n)
	}
	for len(edges) < n*degree/2 {
		add(rng.IntN(n), rng.IntN(n))
	}
	return edges
}

// graphConnected tells whether the nodes for which alive holds form one connected component over edges.
func graphConnected(n int, edges [][2]int, alive func(int) bool) bool {
	adj := make([][]int, n)
	for _, e := range edges {
		if alive(e[0]) && alive(e[1]) {
			adj[e[0]] = append(adj[e[0]], e[1])
			adj[e[1]] = append(adj[e[1]], e[0])
		}
	}
	start, live := -1, 0
	for i := range n {
		if alive(i) {
			live++
			if start < 0 {
				start = i
			}
		}
	}
	if live == 0 {
		return true
	}
	seen := make([]bool, n)
	seen[start] = true
	queue, reached := []int{start}, 1
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range adj[v] {
			if !seen[w] {
				seen[w] = true
				reached++
				queue = append(queue, w)
			}
		}
	}
	return reached == live
}

// missing counts the ids that b has not delivered.
func (b *inbox) missing(ids []gossip.MsgID) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, id := range ids {
		if b.count[id] == 0 {
			n++
		}
	}
	return n
}

// waitDelivered waits until every inbox of boxes (indexed by node) listed in who has delivered every id.
func waitDelivered(t *testing.T, boxes []*inbox, who []int, ids []gossip.MsgID, timeout time.Duration, what string) {
	t.Helper()
	err := testkit.Poll(context.Background(), timeout, func() bool {
		for _, i := range who {
			if boxes[i].missing(ids) > 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		var report []string
		for _, i := range who {
			if m := boxes[i].missing(ids); m > 0 {
				report = append(report, fmt.Sprintf("node %d misses %d", i, m))
			}
		}
		t.Fatalf("waited %v for %s (%d messages): %v", timeout, what, len(ids), report)
	}
}

// checkExactlyOnce asserts that each inbox listed in who delivered each id once and, unless others, nothing else
// than ids. It reports the first 10 violations.
func checkExactlyOnce(t *testing.T, boxes []*inbox, who []int, ids []gossip.MsgID, others bool) {
	t.Helper()
	want := make(map[gossip.MsgID]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	bad := 0
	for _, i := range who {
		b := boxes[i]
		b.mu.Lock()
		for _, id := range ids {
			if c := b.count[id]; c != 1 && bad < 10 {
				t.Errorf("node %d delivered message %s %d times, want once", i, id.String()[:8], c)
				bad++
			}
		}
		for id, c := range b.count {
			if !others && !want[id] && bad < 10 {
				t.Errorf("node %d delivered an unexpected message %s (%d times)", i, id.String()[:8], c)
				bad++
			}
		}
		b.mu.Unlock()
	}
}

// waitMeshFormed waits until every node listed in who has at least one eager mesh link on topic.
func waitMeshFormed(t *testing.T, nodes []*actors.Node, who []int, topic string) {
	t.Helper()
	for _, i := range who {
		var (
			info gossip.TopicInfo
			err  error
		)
		if pollErr := testkit.Poll(context.Background(), 10*time.Second, func() bool {
			info, err = nodes[i].Topic(ctxTimeout(t, 5*time.Second), topic)
			return err == nil && len(info.Eager) >= 1
		}); pollErr != nil {
			st, _ := nodes[i].GossipStats(ctxTimeout(t, 5*time.Second))
			t.Fatalf("node %d: no eager link on %q: %d peers, %d eager, %d lazy (%v); grafts sent %d received %d, prunes sent %d received %d",
				i, topic, len(info.Peers), len(info.Eager), len(info.Lazy), err,
				st.Router.GraftsSent, st.Router.GraftsReceived, st.Router.PrunesSent, st.Router.PrunesReceived)
		}
	}
}

// thinMeshes counts the nodes whose mesh on topic is smaller than min(Dlo, topic peers), the size every heartbeat
// grafts up to (peers in prune backoff excepted).
func thinMeshes(t *testing.T, nodes []*actors.Node, topic string) int {
	t.Helper()
	dlo, thin := gossip.DefaultConfig().Dlo, 0
	for _, node := range nodes {
		info, err := node.Topic(ctxTimeout(t, 5*time.Second), topic)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Eager)+len(info.Lazy) < min(dlo, len(info.Peers)) {
			thin++
		}
	}
	return thin
}

// publish publishes payload from node and returns its id. With retryNoPeers, a publication refused with
// ErrNoPeers (nothing was sent) is retried for up to 5s; any other error fails the test.
func publish(t *testing.T, node *actors.Node, topic, payload string, retryNoPeers bool) gossip.MsgID {
	t.Helper()
	var (
		id    gossip.MsgID
		err   error
		tries int
	)
	pollErr := testkit.Poll(context.Background(), 5*time.Second, func() bool {
		tries++
		id, err = node.Publish(ctxTimeout(t, 5*time.Second), topic, wrapperspb.String(payload))
		return err == nil || !retryNoPeers || !errors.Is(err, gossip.ErrNoPeers)
	})
	if err != nil || pollErr != nil {
		t.Fatalf("publish %q from %s (%d tries): %v", payload, node.ID().Short(), tries, err)
	}
	return id
}

func indices(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// survivableKill draws killed of the n nodes of the graph edges such that the others stay connected: the set
// (dead) and the others in order (live).
func survivableKill(t *testing.T, rng *rand.Rand, n, killed int, edges [][2]int) (dead map[int]bool, live []int) {
	t.Helper()
	dead = make(map[int]bool)
	for try := 0; ; try++ {
		if try == 100 {
			t.Fatal("no set of nodes to kill leaves the survivors connected")
		}
		clear(dead)
		for _, i := range rng.Perm(n)[:killed] {
			dead[i] = true
		}
		if graphConnected(n, edges, func(i int) bool { return !dead[i] }) {
			break
		}
	}
	for i := range n {
		if !dead[i] {
			live = append(live, i)
		}
	}
	return dead, live
}
