package actors_test

import (
	"crypto/sha256"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/testkit"
)

// originSeqID is a MsgID of the kind gossip.Config.MsgID's doc recommends to applications that need identity bound
// to the origin: Origin and Seq.
func originSeqID(m *gossip.Message) gossip.MsgID {
	h := sha256.New()
	h.Write(m.Origin[:])
	h.Write(binary.BigEndian.AppendUint64(nil, m.Seq))
	var id gossip.MsgID
	copy(id[:], h.Sum(nil))
	return id
}

// A restarted node numbered its publications from 1 again: with an id of Origin and Seq, its first publications
// after the restart had its last run's ids, which its peers' seen caches still held (SeenTTL), and they were dropped
// as duplicates while Publish returned nil.
func TestARestartedPublisherIsNotSilencedByItsLastRunsNumbers(t *testing.T) {
	nw := gossipNetwork(t, 2, nil, func(i int, cfg *actors.Config) {
		cfg.Gossip.Router.MsgID = originSeqID
		cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 50*time.Millisecond, 200*time.Millisecond, 1000
	})
	nw.Connect(1, 0) // node 1 keeps node 0 and redials it after its restart
	box := newInbox()
	if _, err := nw.Nodes[1].Subscribe(ctxTimeout(t, 5*time.Second), "t", box.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Nodes[0].Subscribe(ctxTimeout(t, 5*time.Second), "t", newInbox().handle); err != nil {
		t.Fatal(err)
	}
	waitMeshes(t, nw.Nodes, "t", 1)
	if _, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("before restart")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return len(box.strings()) == 1 }, "node 1 got the first message")

	id0 := nw.Nodes[0].ID()
	nw.Kill(0)
	testkit.WaitFor(t, 10*time.Second, func() bool { return !nw.Nodes[1].Connected(id0) }, "node 1 saw node 0 go")
	nw.Restart(0)
	testkit.WaitFor(t, 10*time.Second, func() bool { return nw.Nodes[1].Connected(id0) }, "node 1 redialed node 0")
	if _, err := nw.Nodes[0].Subscribe(ctxTimeout(t, 5*time.Second), "t", newInbox().handle); err != nil {
		t.Fatal(err)
	}
	waitMeshes(t, nw.Nodes[:1], "t", 1)
	if _, err := nw.Nodes[0].Publish(ctxTimeout(t, 5*time.Second), "t", wrapperspb.String("after restart")); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctxTimeout(t, 10*time.Second), 5*time.Second, func() bool { return len(box.strings()) == 2 }); err != nil {
		st, _ := nw.Nodes[1].GossipStats(ctxTimeout(t, time.Second))
		t.Fatalf("node 1 got %q; duplicates %d: the restarted node's publication reused its last run's number",
			box.strings(), st.Router.Duplicates)
	}
}

// A node whose clock was ahead in its last run (its record spread with that clock's sequence number) and that
// restarts at another address, its clock corrected, signed a record of a lower sequence number, which its peers
// refused as stale, even from the node itself: they kept sending the network to its old address. With a DataDir the
// node keeps its last sequence number (record.seq) and signs the next one above it.
func TestARestartedNodeWhoseClockWasAheadPublishesANewerRecord(t *testing.T) {
	dir := t.TempDir()
	var cfgA actors.Config
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		if i == 1 {
			cfgA = *cfg
		}
	}))
	b, a := nw.Nodes[0], nw.Nodes[1]
	x := a.ID()
	oldAddr := a.Addr().Addr
	// A's last run, with DataDir dir and a clock an hour ahead, signed its record with that clock; B holds it.
	ahead, err := routing.NextRecordSeq(filepath.Join(dir, "record.seq"), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	old, err := routing.NewRecord(cfgA.Identity, ahead, []string{oldAddr})
	if err != nil {
		t.Fatal(err)
	}
	b.AddRecords([]*messages.NodeRecord{old})
	addrAtB := func() string {
		s, err := b.RoutingTable(ctxTimeout(t, time.Second))
		if err != nil {
			return ""
		}
		for _, e := range s.Entries {
			if e.ID == x {
				return e.Addr
			}
		}
		return ""
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return addrAtB() == oldAddr }, "B learned A's record")
	nw.Kill(1)

	// A restarts on another port with the same identity and data directory, and dials B.
	cfgA.ListenAddr, cfgA.DataDir = "127.0.0.1:0", dir
	a2, err := actors.NewNode(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.Start(ctxTimeout(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a2.Close() })
	newAddr := a2.Addr().Addr
	if newAddr == oldAddr {
		t.Fatal("the restarted node listens on its old port: the test needs another")
	}
	if err := a2.Connect(ctxTimeout(t, 10*time.Second), b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	if err := testkit.Poll(ctxTimeout(t, 10*time.Second), 5*time.Second, func() bool { return addrAtB() == newAddr }); err != nil {
		t.Fatalf("B holds A at %q after A restarted at %s and connected: its new record was taken for stale", addrAtB(), newAddr)
	}
}
