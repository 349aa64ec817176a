package actors_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/actormesh/actormesh/gossip"
)

// A network whose nodes share more topics than a peer's IHAVE messages read a heartbeat (gossip's MaxIHaveMessages,
// 10): after a fifth of the nodes are killed, every live subscriber of every topic gets every message published
// after, exactly once, none delivered in another topic, and none of the repair's control is refused. Here the
// trees repair themselves within ~0.2 s, before IHAVE is needed: the IHAVE and IWANT limits across topics have
// tests of their own in gossip (TestTheIHavesOfAnRPCAreOneMessage, TestRepairOfManyTopicsStaysWithinWhatThePeerServes).
func TestGossipManyTopicsDeliverAfterAFifthIsKilled(t *testing.T) {
	const (
		n, killed, topics = 20, 4, 12
	)
	start := time.Now()
	rng := rand.New(rand.NewPCG(58, 12))
	edges := randomGraph(rng, 0, n, 6)
	nw, _, trs := memGossipNetwork(t, n, edges, nil)
	names := make([]string, topics)
	boxes := make([][]*inbox, topics)
	for k := range names {
		names[k] = fmt.Sprintf("subnet-%02d", k)
		boxes[k] = subscribeAll(t, nw.Nodes, names[k])
	}
	all := indices(0, n)
	for _, name := range names {
		waitMeshes(t, nw.Nodes, name, 1)
		waitMeshFormed(t, nw.Nodes, all, name)
	}
	t.Logf("%d nodes in %d topics: meshes formed in %v", n, topics, time.Since(start))

	dead, live := survivableKill(t, rng, n, killed, edges)
	for i := range dead {
		trs[i].Kill()
		_ = nw.Nodes[i].Close()
	}
	killedAt := time.Now()
	after := make([][]gossip.MsgID, topics)
	for k, name := range names {
		for j := range 3 {
			after[k] = append(after[k], publish(t, nw.Nodes[live[rng.IntN(len(live))]], name, fmt.Sprintf("%s after %d", name, j), true))
		}
	}
	for k, name := range names {
		waitDelivered(t, boxes[k], live, after[k], 20*time.Second, "every live node delivered every message of "+name+" published after the kill")
	}
	for k := range names {
		checkExactlyOnce(t, boxes[k], live, after[k], false)
	}
	for _, i := range live {
		st, err := nw.Nodes[i].GossipStats(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if st.RateLimitedControl != 0 || st.DeliveryDropped != 0 {
			t.Errorf("node %d: %d RPCs of honest control refused, %d deliveries dropped", i, st.RateLimitedControl, st.DeliveryDropped)
		}
	}
	t.Logf("%d messages in %d topics delivered to %d live nodes %v after the kill; test took %v", topics*3, topics,
		len(live), time.Since(killedAt), time.Since(start))
}
