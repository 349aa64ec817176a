package actors_test

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// A tree report is taken only with its root's signature of the beacon and rank it names (gossip.Config.TreeVerify,
// on with VerifySignatures): one relayed by a peer is checked and taken; forged ones (a rank the root did not sign)
// are refused and counted, and ban their sender at the penalty threshold (3).
func TestForgedTreeReportsGetTheirSenderBanned(t *testing.T) {
	nw := gossipNetwork(t, 2, [][2]int{{0, 1}}, nil)
	hostile, victim := nw.Nodes[0], nw.Nodes[1]
	subscribeAll(t, nw.Nodes, "t")
	waitMeshes(t, nw.Nodes, "t", 1)
	root := newIdentity(t)
	// fastGossip's heartbeat is 100 ms: beacons count its quarters.
	seq := uint64(time.Now().UnixNano() / int64(25*time.Millisecond))
	signed := &messages.GossipTree{Topic: "t", Root: root.NodeID().Bytes(), RootRank: 9, Seq: seq, Dist: 1,
		Sig: root.Sign(gossip.AppendBeaconSignedBytes(nil, "t", root.NodeID(), 9, seq))}
	send := func(tr *messages.GossipTree) {
		t.Helper()
		rpc := &messages.GossipRPC{Control: &messages.GossipControl{Tree: []*messages.GossipTree{tr}}}
		if err := hostile.Send(ctxTimeout(t, 5*time.Second), victim.ID(), gossip.Protocol, rpc); err != nil {
			t.Fatal(err)
		}
	}
	stats := func() gossip.Stats {
		t.Helper()
		st, err := victim.GossipStats(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return st.Router
	}
	checked := stats().TreeBeaconsChecked
	send(signed)
	testkit.WaitFor(t, 10*time.Second, func() bool { return stats().TreeBeaconsChecked > checked },
		"the victim checked the relayed beacon")
	if st := stats(); st.TreeBadBeacons != 0 || !victim.Connected(hostile.ID()) {
		t.Fatalf("a signed beacon: %d refused, connected %v", st.TreeBadBeacons, victim.Connected(hostile.ID()))
	}
	forged := &messages.GossipTree{Topic: "t", Root: signed.Root, RootRank: 0, Seq: seq + 1, Dist: 1, Sig: signed.Sig}
	for range 3 {
		send(forged)
	}
	waitBanned(t, victim, hostile.ID(), "", "the victim banned the forger")
	if n := stats().TreeBadBeacons; n != 3 {
		t.Fatalf("%d forged reports refused, want 3", n)
	}
}
