package gossip

// Messages awaiting their verdicts, and the penalties of those rejected (the audit of stop 47).

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// A message awaiting its verdict stays known once the seen-cache, bounded in count, forgot its id (SeenMax new
// ids within ValidationTimeout; audit): a second copy became pending over the first, whose bytes and peer's place
// were never given back.
func TestAPendingIDStaysKnownWhenTheSeenCacheForgetsIt(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SeenMax = 4
	r := joined(t, cfg, 3)
	big := msg(string(make([]byte, 1000)))
	if _, st := r.HandleMessage(t0, nid(1), big); st != Pending {
		t.Fatalf("first copy: %v", st)
	}
	// Four other messages (accepted at once, as on a topic without validators) push its id out of the seen-cache.
	for i := range 4 {
		receive(t, r, t0, nid(2), msg(fmt.Sprint("flood", i)), Accept)
	}
	copy2 := msg(string(make([]byte, 1000)))
	_, st := r.HandleMessage(t0, nid(3), copy2)
	t.Logf("second copy while the first is pending: %v (pending %d, pendingBytes %d)", st, len(r.pending), r.pendingBytes)
	out := r.Validated(t0, copy2.ID, Accept)
	t.Logf("delivered %d; after its verdict: pending %d, pendingBytes %d, peer1.validating %d validatingBytes %d",
		len(out.Deliver), len(r.pending), r.pendingBytes, r.peers[nid(1)].validating, r.peers[nid(1)].validatingBytes)
	// The first copy's verdict (the relay sends it with its message): ignored.
	out = r.validated(t0, big.ID, big, Accept, false)
	t.Logf("first copy's verdict: delivered %d; pending %d, pendingBytes %d, peer1.validating %d",
		len(out.Deliver), len(r.pending), r.pendingBytes, r.peers[nid(1)].validating)
	r.Heartbeat(t0.Add(cfg.ValidationTimeout * 2))
	t.Logf("after a heartbeat past ValidationTimeout: pending %d, pendingBytes %d, peer1.validating %d",
		len(r.pending), r.pendingBytes, r.peers[nid(1)].validating)
	if r.pendingBytes != 0 || r.peers[nid(1)].validating != 0 {
		t.Errorf("leaked: pendingBytes %d, peer1.validating %d with nothing pending", r.pendingBytes, r.peers[nid(1)].validating)
	}
}

// The leak above, repeated, reached MaxPendingValidationBytes: while anything was pending, nothing else was taken,
// and honest messages were dropped unseen.
func TestForgottenPendingIDsNoLongerStarveValidation(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SeenMax = 4
	cfg.MaxPendingValidationBytes = 10_000
	cfg.MaxPendingValidationBytesPerPeer = 10_000
	r := joined(t, cfg, 4)
	_ = r
	now := t0
	for round := range 12 { // the hostile peer 1: its own message twice, the seen-cache flushed in between
		m1 := msg(fmt.Sprint(round, string(make([]byte, 1000))))
		r.HandleMessage(now, nid(1), m1)
		for i := range 4 {
			receive(t, r, now, nid(1), msg(fmt.Sprint("flood", round, i)), Accept)
		}
		m2 := msg(fmt.Sprint(round, string(make([]byte, 1000))))
		r.HandleMessage(now, nid(1), m2)
		r.Validated(now, m2.ID, Accept)
		r.RemovePeer(now, nid(1)) // it reconnects: its own share starts afresh, the node's total does not
		addPeers(t, r, topicA, 1, 1)
	}
	r.RemovePeer(now, nid(1)) // the hostile peer leaves
	now = now.Add(cfg.ValidationTimeout * 2)
	r.Heartbeat(now)
	t.Logf("nothing pending (%d), pendingBytes %d", len(r.pending), r.pendingBytes)
	// Honest peers' messages of 1000 bytes arrive while a slow validator works: 9 fit in 10 000 bytes.
	taken := 0
	for i := range 9 {
		if _, st := r.HandleMessage(now, nid(2+i%3), msg(fmt.Sprint(i, string(make([]byte, 1000))))); st == Pending {
			taken++
		}
	}
	t.Logf("honest messages taken for validation: %d of 9 (dropped %d)", taken, r.Stats().Dropped)
	if taken != 9 {
		t.Errorf("only %d of 9 honest messages awaiting a verdict: the leaked bytes keep the others out", taken)
	}
}

// A local Publish of a payload whose peer copy awaits its verdict is a duplicate, even once the seen-cache forgot
// the id: it went through, and the message was delivered twice to the local subscribers.
func TestAPublicationOfAPendingPayloadIsADuplicate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SeenMax = 4
	r := joined(t, cfg, 3)
	peerCopy := msg("payload")
	if _, st := r.HandleMessage(t0, nid(1), peerCopy); st != Pending {
		t.Fatal(st)
	}
	for i := range 4 {
		receive(t, r, t0, nid(2), msg(fmt.Sprint("flood", i)), Accept)
	}
	out, err := r.Publish(t0, msg("payload"))
	delivered := len(out.Deliver)
	out2 := r.Validated(t0, peerCopy.ID, Accept)
	delivered += len(out2.Deliver)
	t.Logf("Publish err %v; deliveries of one id: %d", err, delivered)
	if delivered != 1 {
		t.Errorf("message %s delivered %d times", peerCopy.ID, delivered)
	}
}

// MaxPendingValidationPerPeer is per peer, across reconnections: a peer that reconnected started a fresh share while
// its earlier messages still awaited their verdicts, and took every place in four reconnections.
func TestAPeersPendingShareOutlivesItsReconnection(t *testing.T) {
	cfg := DefaultConfig()
	r := joined(t, cfg, 2)
	n := 0
	for round := range 4 {
		for range cfg.MaxPendingValidationPerPeer {
			if _, st := r.HandleMessage(t0, nid(1), msg(fmt.Sprint("slow", n))); st == Pending {
				n++
			}
		}
		r.RemovePeer(t0, nid(1)) // the hostile peer reconnects
		addPeers(t, r, topicA, 1, 1)
		t.Logf("after round %d: %d of peer 1's messages pending (share %d, total %d)", round, n,
			cfg.MaxPendingValidationPerPeer, cfg.MaxPendingValidation)
	}
	_, st := r.HandleMessage(t0, nid(2), msg("honest"))
	t.Logf("honest peer's message: %v", st)
	if n > cfg.MaxPendingValidationPerPeer || st != Pending {
		t.Errorf("one peer holds %d places awaiting a verdict (share %d); an honest message is %v", n,
			cfg.MaxPendingValidationPerPeer, st)
	}
}

type banCountingNetwork struct {
	flakyNetwork
	bans atomic.Int32
}

func (b *banCountingNetwork) Ban(session.NodeID, time.Duration, string) error {
	b.bans.Add(1)
	return nil
}

// One peer sends 10 messages that the topic's validator rejects: it is banned at the PenaltyThreshold-th (3), and
// again at each 3 more (6, 9). Every rejection past the threshold used to ban it again (8 bans, 8 in
// RelayStats.Banned).
func TestAPeerIsBannedOnceEveryPenaltyThreshold(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := &banCountingNetwork{flakyNetwork: flakyNetwork{self: nid(1), peer: nid(2)}}
	cfg := DefaultRelayConfig()
	cfg.VerifySignatures = false
	relay := spawnRelay(t, cfg, net)
	reject := func(context.Context, *Delivery) Verdict { return Reject }
	if _, err := relay.Subscribe(ctx, "blocks", func(*Delivery) {}, WithValidator(reject)); err != nil {
		t.Fatal(err)
	}
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}}}})
	rpc := &messages.GossipRPC{}
	for i := range 10 {
		rpc.Messages = append(rpc.Messages, &messages.GossipMessage{Topic: "blocks", Data: []byte(fmt.Sprint("bad", i)),
			Origin: nid(2).Bytes(), Seq: uint64(i), OriginTime: time.Now().UnixNano()})
	}
	relay.send(peerRPC{from: nid(2), rpc: rpc})
	var st RelayStats
	pollUntil(t, ctx, func() bool {
		var err error
		st, err = relay.Stats(ctx)
		return err == nil && st.Router.Rejected == 10
	}, "10 rejections")
	t.Logf("Rejected %d, RelayStats.Banned %d, Network.Ban calls %d (one peer)", st.Router.Rejected, st.Banned, net.bans.Load())
	if st.Banned != 3 || net.bans.Load() != 3 {
		t.Errorf("RelayStats.Banned %d, Network.Ban calls %d for 10 rejections, want 3 and 3", st.Banned, net.bans.Load())
	}
}

// MaxPendingIWantPerPeer is per peer across reconnections too: a peer announcing made-up ids that reconnected got a
// fresh share while its wants stayed, and nine reconnections took every place of MaxPendingIWant, so that an
// honest peer's announcement was not asked for.
func TestAPeersWantedShareOutlivesItsReconnection(t *testing.T) {
	cfg := DefaultConfig()
	r := joined(t, cfg, 2)
	var made uint32
	madeUp := func(n int) []MsgID {
		ids := make([]MsgID, n)
		for i := range ids {
			made++
			binary.BigEndian.PutUint32(ids[i][:], made)
		}
		return ids
	}
	per := min(cfg.MaxIHaveLength, cfg.MaxPendingIWantPerPeer) // ids one IHAVE can announce
	for range cfg.MaxPendingIWant/per + 1 {
		r.HandleIHave(t0, nid(1), IHave{Topic: topicA, IDs: madeUp(per)})
		r.RemovePeer(t0, nid(1)) // it reconnects
		addPeers(t, r, topicA, 1, 1)
	}
	honest := madeUp(1)
	out := r.HandleIHave(t0, nid(2), IHave{Topic: topicA, IDs: honest})
	if c, _ := sendsTo(out, nid(2)); c == nil || len(c.IWant) != 1 {
		t.Fatalf("an honest announcement was not asked for (%d ids wanted, cap %d): one peer took every place",
			len(r.wants), cfg.MaxPendingIWant)
	}
}

// A message of a topic the node has not joined is dropped before its signature is checked: dropped unrecorded as
// seen, each replay of one cost a check (~40 µs), and a bad signature penalised the peer for a message the node
// would never have taken.
func TestAMessageOfATopicNotJoinedIsNotVerified(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net := &banCountingNetwork{flakyNetwork: flakyNetwork{self: nid(1), peer: nid(2)}}
	relay := spawnRelay(t, DefaultRelayConfig(), net) // verifies signatures
	relay.send(peerRPC{from: nid(2), rpc: &messages.GossipRPC{Hello: true}})
	rpc := &messages.GossipRPC{}
	for i := range 5 {
		rpc.Messages = append(rpc.Messages, &messages.GossipMessage{Topic: "elsewhere", Data: []byte(fmt.Sprint(i)),
			Origin: nid(2).Bytes(), Seq: uint64(i), OriginTime: time.Now().UnixNano(), Signature: make([]byte, 64)})
	}
	relay.send(peerRPC{from: nid(2), rpc: rpc})
	var st RelayStats
	pollUntil(t, ctx, func() bool {
		var err error
		st, err = relay.Stats(ctx)
		return err == nil && st.Router.Dropped >= 5
	}, "the 5 messages dropped")
	if st.Verified != 0 || st.BadSignatures != 0 || net.bans.Load() != 0 {
		t.Fatalf("messages of a topic not joined: %d signatures checked, %d bad, %d bans; want none",
			st.Verified, st.BadSignatures, net.bans.Load())
	}
}
