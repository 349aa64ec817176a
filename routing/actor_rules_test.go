package routing

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// fillBucketOf fills the bucket of id in the rig's table (a classic one: KeepNearest off), each entry last seen at
// seen, and returns a routing actor over it.
func fillBucketOf(t *testing.T, rig *revalidationRig, net Network, id session.NodeID, seen time.Time) *routingActor {
	t.Helper()
	rig.cfg.Table.KeepNearest = false
	var err error
	if rig.tab, err = NewTable(rig.self, rig.cfg.Table); err != nil {
		t.Fatal(err)
	}
	d := LogDistance(rig.tab.SelfKey(), KeyOf(id))
	for range rig.cfg.Table.K {
		if r := rig.tab.Add(Entry{ID: idInBucket(rig.rng, rig.self, d), Addr: randAddr(rig.rng)}, seen); r.Status != Added {
			t.Fatalf("filling the bucket: %v", r.Status)
		}
	}
	return rig.actor(t, net)
}

// A newcomer for a full bucket whose least recently seen entry was seen within CheckAge waits in the replacement
// cache: no liveness check is started for it.
func TestANewcomerForABucketSeenLatelyChecksNobody(t *testing.T) {
	rig := newRevalidationRig(t, 230)
	x := identity(t, 2)
	net := &bookNet{id: rig.self, addrs: map[session.NodeID]string{}}
	a := fillBucketOf(t, rig, net, x.NodeID(), t0.Add(-rig.cfg.CheckAge/2))
	r, err := NewRecord(x, 1, []string{"192.0.2.2:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(r, t0, true, false)
	a.wg.Wait()
	if a.stats.NewcomerChecks != 0 || a.stats.Checks != 0 {
		t.Fatalf("%d newcomer checks (%d checks) of a bucket seen %v ago, want none", a.stats.NewcomerChecks, a.stats.Checks, rig.cfg.CheckAge/2)
	}
	if a.table.ReplacementLens()[LogDistance(a.table.SelfKey(), KeyOf(x.NodeID()))-1] != 1 {
		t.Fatal("the newcomer does not wait in the replacement cache")
	}
}

// An evicted node that answers this node itself, even without a record of its own in the answer, is alive: its
// record relayed by others afterwards is taken again.
func TestAnEvictedNodesAnswerWithoutItsRecordEndsItsEviction(t *testing.T) {
	rig := newRevalidationRig(t, 231)
	a := rig.actor(t, &recordNet{addrs: map[session.NodeID]string{}})
	x := identity(t, 43)
	rec, err := NewRecord(x, 1, []string{"192.0.2.10:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.gone.add(x.NodeID(), rec.GetSeq(), t0) // evicted with this record
	a.learn(x.NodeID(), &messages.Nodes{}, t0.Add(time.Second), false)
	a.addRecord(rec, t0.Add(2*time.Second), false, false) // relayed by another node
	if _, ok := rig.tab.Get(x.NodeID()); !ok || a.stats.GoneRecords != 0 {
		t.Fatalf("the record of a node that answered since its eviction: in the table %v, GoneRecords %d", ok, a.stats.GoneRecords)
	}
}

// answerLog is an askFrom that keeps how it was answered.
type answerLog struct {
	askFrom
	replied, refused int
}

func (r *answerLog) Reply(proto.Message) error { r.replied++; return nil }
func (r *answerLog) ReplyError(error) error    { r.refused++; return nil }

// A peer's FindNode requests beyond RequestBurst at once are refused (Stats.Throttled), and served again once its
// rate has brought it a token.
func TestFindNodeRequestsBeyondThePeersRateAreRefused(t *testing.T) {
	rig := newRevalidationRig(t, 232)
	a := rig.actor(t, &stallingNet{id: rig.self})
	target := KeyOf(rig.self)
	req := &answerLog{askFrom: askFrom{from: randID(rig.rng), msg: &messages.FindNode{Target: target[:]}}}
	for range rig.cfg.RequestBurst + 1 {
		a.serve(req, t0)
	}
	if req.replied != rig.cfg.RequestBurst || req.refused != 1 || a.stats.Throttled != 1 || a.stats.RequestsServed != uint64(rig.cfg.RequestBurst) {
		t.Fatalf("%d requests at once: %d answered, %d refused (Throttled %d, RequestsServed %d); want %d answered, 1 refused",
			rig.cfg.RequestBurst+1, req.replied, req.refused, a.stats.Throttled, a.stats.RequestsServed, rig.cfg.RequestBurst)
	}
	a.serve(req, t0.Add(time.Duration(float64(time.Second)/rig.cfg.RequestRate)))
	if req.replied != rig.cfg.RequestBurst+1 {
		t.Fatal("a request once the rate brought a token was refused")
	}
}

// A lookup that ends with nobody found, though without an error (its only starting point was the node itself),
// counts in LookupFailures.
func TestALookupThatFindsNobodyCountsAsFailed(t *testing.T) {
	sys, pid, net, _ := startStalling(t, DefaultConfig())
	reply := make(chan LookupResult, 1)
	sys.Root.Send(pid, &LookupRequest{Target: Key{1}, Seeds: []Entry{{ID: net.id, Addr: "198.51.100.9:4001"}}, Reply: reply})
	if r := awaitLookup(t, reply, "the lookup from the node itself"); len(r.Closest) != 0 {
		t.Fatalf("found %d nodes from nobody", len(r.Closest))
	}
	if s := statsOf(t, sys, pid); s.Lookups != 1 || s.LookupFailures != 1 {
		t.Fatalf("Lookups %d, LookupFailures %d after a lookup that found nobody; want 1 and 1", s.Lookups, s.LookupFailures)
	}
}

// The entries passed over for being busy are bounded (maxDeferred buckets' worth): past the bound a new round
// starts.
func TestTheBusyEntriesAreBounded(t *testing.T) {
	rig := newRevalidationRig(t, 233)
	a := rig.actor(t, &stallingNet{id: rig.self})
	bound := maxDeferred * rig.cfg.Table.K
	for range bound + 1 {
		a.deferCheck(randID(rig.rng))
	}
	if n := len(a.busy); n > bound {
		t.Fatalf("%d busy entries kept, bound %d", n, bound)
	}
}

// A record older than the one the table holds is not taken, even once the verified records' cache has forgotten
// the newer one (it is bounded): the table keeps the newer record and its address.
func TestTheTableKeepsANewerRecordTheCacheForgot(t *testing.T) {
	rig := newRevalidationRig(t, 234)
	a := rig.actor(t, &recordNet{addrs: map[session.NodeID]string{}})
	a.records = newVerifiedRecords(1)
	x, y := identity(t, 44), identity(t, 45)
	record := func(id *session.Identity, seq uint64, addr string) *messages.NodeRecord {
		r, err := NewRecord(id, seq, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a.addRecord(record(x, 2, "192.0.2.20:4001"), t0, false, false)
	a.addRecord(record(y, 1, "192.0.2.21:4001"), t0, false, false) // the cache forgets x's
	a.addRecord(record(x, 1, "192.0.2.22:4001"), t0, false, false)
	if e, _ := rig.tab.Get(x.NodeID()); e.Record.GetSeq() != 2 || e.Addr != "192.0.2.20:4001" {
		t.Fatalf("the table holds x's record %d at %s, want the newer 2 at 192.0.2.20:4001", e.Record.GetSeq(), e.Addr)
	}
}

// A node waiting in a replacement cache whose liveness check fails (an entry a nearer newcomer displaced while the
// check was under way) is evicted by the entries' rule: its first failure neither counts in Evictions nor puts it
// among the gone nodes, whose relayed records are refused; its MaxFailures-th does both. Until stop 58 its first
// failure did, so one lost answer kept a live node out for goneTTL.
func TestAWaitingNodesFailedCheckEvictsItOnlyAfterMaxFailures(t *testing.T) {
	rig := newRevalidationRig(t, 258)
	x := identity(t, 58)
	a := fillBucketOf(t, rig, &bookNet{id: rig.self, addrs: map[session.NodeID]string{}}, x.NodeID(), t0)
	rec, err := NewRecord(x, 1, []string{"192.0.2.58:4001"})
	if err != nil {
		t.Fatal(err)
	}
	a.addRecord(rec, t0, false, false)
	d := LogDistance(a.table.SelfKey(), KeyOf(x.NodeID()))
	if a.table.ReplacementLens()[d-1] != 1 {
		t.Fatal("the newcomer does not wait in the replacement cache")
	}
	fail := func(at time.Time) {
		a.inFlight, a.checking[x.NodeID()] = 1, true
		a.exchangeDone(checkFailed(a, x.NodeID(), context.DeadlineExceeded, at), at)
	}
	for n := 1; n < rig.cfg.Table.MaxFailures; n++ {
		fail(t0.Add(time.Duration(n) * time.Second))
		if a.stats.Evictions != 0 || a.gone.holds(x.NodeID(), 1, t0.Add(time.Minute)) || a.table.ReplacementLens()[d-1] != 1 {
			t.Fatalf("after %d failed check(s) of %d: Evictions %d, gone %v, waiting %d; want 0, false, 1", n,
				rig.cfg.Table.MaxFailures, a.stats.Evictions, a.gone.holds(x.NodeID(), 1, t0.Add(time.Minute)),
				a.table.ReplacementLens()[d-1])
		}
	}
	fail(t0.Add(time.Minute))
	if a.stats.Evictions != 1 || !a.gone.holds(x.NodeID(), 1, t0.Add(time.Minute)) || a.table.ReplacementLens()[d-1] != 0 {
		t.Fatalf("after MaxFailures failed checks: Evictions %d, gone %v, waiting %d; want 1, true, 0",
			a.stats.Evictions, a.gone.holds(x.NodeID(), 1, t0.Add(time.Minute)), a.table.ReplacementLens()[d-1])
	}
}
