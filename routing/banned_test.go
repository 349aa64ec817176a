package routing

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// spawnBanRig starts a routing actor over net, with no revalidation nor introductions, holding a record of each of
// ids at the address of the same index; it returns the actor and the records.
func spawnBanRig(t *testing.T, sys *actor.ActorSystem, net Network, ids []*session.Identity, addrs []string) (*actor.PID, []*messages.NodeRecord) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RevalidateInterval, cfg.RevalidateAnsweredInterval, cfg.IntroduceDelay = time.Hour, time.Hour, 0
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	t.Cleanup(func() { _ = sys.Root.StopFuture(pid).Wait() })
	recs := make([]*messages.NodeRecord, len(ids))
	for i, id := range ids {
		if recs[i], err = NewRecord(id, 1, []string{addrs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	sys.Root.Send(pid, &AddRecords{Records: recs})
	if got := tableIDs(t, sys, pid); len(got) != len(ids) {
		t.Fatalf("%d entries, want the %d records added", len(got), len(ids))
	}
	return pid, recs
}

// A Banned message drops the node this node banned, or every node whose record's address is at the banned IP
// (an IPv4-mapped address bans its IPv4 one), from the table, and the copies of their records that others relay
// are not taken again. A banned node used to stay in the table for the whole ban: every check and request of it
// failed locally, spared as busy, and it was handed to other nodes in NODES replies.
func TestBannedDropsTheBannedNodesFromTheTable(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	good, x, y, z := identity(t, 71), identity(t, 72), identity(t, 73), identity(t, 74)
	net := &partlyReachableNet{stallingNet: stallingNet{id: identity(t, 70).NodeID()}, good: good.NodeID()}
	pid, recs := spawnBanRig(t, sys, net, []*session.Identity{good, x, y, z},
		[]string{"70.0.0.1:4001", "71.0.0.1:4001", "72.0.0.1:4001", "72.0.0.1:4002"})
	sys.Root.Send(pid, &Banned{ID: x.NodeID()})
	if ids := tableIDs(t, sys, pid); ids[x.NodeID()] || len(ids) != 3 {
		t.Fatalf("after x's ban: x in the table %v, %d entries; want false, 3", ids[x.NodeID()], len(ids))
	}
	sys.Root.Send(pid, &Banned{IP: netip.MustParseAddr("::ffff:72.0.0.1")})
	if ids := tableIDs(t, sys, pid); len(ids) != 1 || !ids[good.NodeID()] {
		t.Fatalf("after the ban of y's and z's IP: %d entries, good in the table %v; want 1, true", len(ids), ids[good.NodeID()])
	}
	sys.Root.Send(pid, &AddRecords{Records: recs[1:]}) // their records relayed again
	if st := statsOf(t, sys, pid); st.GoneRecords != 3 || st.Evictions != 0 || st.LookupEvictions != 0 {
		t.Fatalf("GoneRecords %d, Evictions %d, LookupEvictions %d; want 3, 0, 0", st.GoneRecords, st.Evictions, st.LookupEvictions)
	}
	if ids := tableIDs(t, sys, pid); len(ids) != 1 {
		t.Fatalf("%d entries after the banned nodes' records were relayed again, want 1", len(ids))
	}
}

// A lookup's request that fails because this node bans the peer (ErrPeerBanned: the peer's record came back while
// banned) drops the peer from the table at once. As ErrPeerBusy such a request was spared, and the node stayed.
func TestALookupRequestToABannedNodeDropsIt(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	good, banned := identity(t, 71), identity(t, 72)
	net := &partlyReachableNet{stallingNet: stallingNet{id: identity(t, 70).NodeID()}, good: good.NodeID(), banned: banned.NodeID()}
	pid, recs := spawnBanRig(t, sys, net, []*session.Identity{good, banned}, []string{"70.0.0.1:4001", "71.0.0.1:4001"})
	reply := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: KeyOf(banned.NodeID()), Reply: reply})
	if r := awaitLookup(t, reply, "lookup"); r.Err != nil || r.Queried < 2 {
		t.Fatalf("lookup: %v after %d requests, want both entries asked and an answer", r.Err, r.Queried)
	}
	if ids := tableIDs(t, sys, pid); ids[banned.NodeID()] || !ids[good.NodeID()] {
		t.Fatalf("after one lookup: the banned node in the table %v, the good one %v; want false, true",
			ids[banned.NodeID()], ids[good.NodeID()])
	}
	sys.Root.Send(pid, &AddRecords{Records: recs[1:]})
	if st := statsOf(t, sys, pid); st.GoneRecords != 1 || st.LookupEvictions != 0 {
		t.Fatalf("GoneRecords %d, LookupEvictions %d; want 1, 0", st.GoneRecords, st.LookupEvictions)
	}
}

// A liveness check that fails because this node bans the peer drops it from the table at once, as no eviction
// (Stats.Evictions), and remembers it as gone. As ErrPeerBusy such a check was spared, and the node stayed.
func TestALivenessCheckOfABannedNodeDropsIt(t *testing.T) {
	rig := newRevalidationRig(t, 61)
	x := identity(t, 61)
	a := rig.actor(t, &bookNet{id: rig.self, addrs: map[session.NodeID]string{}})
	rec, err := NewRecord(x, 1, []string{"192.0.2.61:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(rec, t0, false, false)
	if _, ok := a.table.Get(x.NodeID()); !ok {
		t.Fatal("x not in the table")
	}
	a.inFlight, a.checking[x.NodeID()] = 1, true
	a.exchangeDone(checkFailed(a, x.NodeID(), fmt.Errorf("%w: peer is banned", ErrPeerBanned), t0), t0)
	if _, ok := a.table.Get(x.NodeID()); ok || a.stats.Evictions != 0 || !a.gone.holds(x.NodeID(), 1, t0.Add(time.Minute)) {
		t.Fatalf("after a check failed by this node's ban: x in the table %v, Evictions %d, gone %v; want false, 0, true",
			ok, a.stats.Evictions, a.gone.holds(x.NodeID(), 1, t0.Add(time.Minute)))
	}
}
