package routing

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// Failed liveness checks of one entry count towards MaxFailures only FailureSpacing apart: a check sent sooner after
// the failure counted last failed in the same stall (a loaded host's, or the peer's), and is not counted. A check
// sent FailureSpacing later that fails too evicts the entry; an answer in between ends the run. Until the review of
// stop 60 two checks a few seconds apart, both failed by one stall, evicted live nodes.
func TestFailedChecksCountOnlyFailureSpacingApart(t *testing.T) {
	rng := newRand(601)
	self := randID(rng)
	cfg := noLimits()
	cfg.MaxFailures, cfg.FailureSpacing = 2, 30*time.Second
	tab, err := NewTable(self, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := idInBucket(rng, self, 256)
	tab.Add(Entry{ID: a, Addr: randAddr(rng)}, t0)
	first := t0.Add(2 * time.Second) // a check sent at t0 failed at its 2s timeout
	if !tab.CheckDue(a, t0) || tab.MarkFailed(a, t0, first) {
		t.Fatal("an entry that failed no check is not due, or one failed check evicted it")
	}
	// Checks sent in the next 30s fail in the same stall: not counted, and not due.
	for _, sent := range []time.Time{first, first.Add(5 * time.Second), first.Add(cfg.FailureSpacing - time.Millisecond)} {
		if tab.CheckDue(a, sent) {
			t.Fatalf("a check sent %v after the failure counted is due", sent.Sub(first))
		}
		if tab.MarkFailed(a, sent, sent.Add(2*time.Second)) {
			t.Fatalf("a failed check sent %v after the failure counted evicted the entry", sent.Sub(first))
		}
	}
	if e, ok := tab.Get(a); !ok || e.Failures != 1 || !e.FailedAt.Equal(first) {
		t.Fatalf("in the table %v, Failures %d, FailedAt %v; want 1 at the first failure", ok, e.Failures, e.FailedAt.Sub(t0))
	}
	// An answer ends the run: the next failure is a first one again.
	due := first.Add(cfg.FailureSpacing)
	tab.MarkAlive(a, due)
	if !tab.CheckDue(a, due) || tab.MarkFailed(a, due, due.Add(2*time.Second)) {
		t.Fatal("after an answer: a check not due, or its failure counted as a second")
	}
	// A check sent FailureSpacing after the failure counted last, failed too: the node is gone.
	second := due.Add(2 * time.Second).Add(cfg.FailureSpacing)
	if !tab.CheckDue(a, second) || !tab.MarkFailed(a, second, second.Add(2*time.Second)) {
		t.Fatal("a failed check sent FailureSpacing after the first did not evict the entry")
	}
	if tab.CheckDue(a, second) || tab.MarkFailed(a, second, second) {
		t.Fatal("an evicted entry is due, or failed again")
	}
}

// A node waiting in a replacement cache follows the same rule; with FailureSpacing 0 a check sent before the failure
// counted last (it overlapped that one) is not counted, one sent after it is; a negative spacing is refused.
func TestFailureSpacingOfAWaitingNodeAndOfZero(t *testing.T) {
	rng := newRand(602)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K = false, 1
	tab, _ := NewTable(self, cfg)
	tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: "73.0.0.1:1"}, t0)
	x := idInBucket(rng, self, 256)
	if r := tab.Add(Entry{ID: x, Addr: "73.0.1.1:1"}, t0); r.Status != Pending {
		t.Fatalf("the newcomer: %v, want Pending", r.Status)
	}
	waiting := func() bool { return tab.ReplacementLens()[255] == 1 }
	if tab.MarkFailed(x, t0, t0) || tab.MarkFailed(x, t0.Add(time.Second), t0.Add(time.Second)) || !waiting() {
		t.Fatal("a waiting node dropped by two failed checks a second apart")
	}
	if tab.CheckDue(x, t0.Add(time.Second)) || !tab.CheckDue(x, t0.Add(cfg.FailureSpacing)) {
		t.Fatal("CheckDue of a waiting node does not follow FailureSpacing")
	}
	if !tab.MarkFailed(x, t0.Add(cfg.FailureSpacing), t0.Add(cfg.FailureSpacing)) || waiting() {
		t.Fatal("a waiting node not dropped by a failed check FailureSpacing after its first")
	}

	cfg = noLimits()
	cfg.FailureSpacing = 0
	tab, _ = NewTable(self, cfg)
	a := idInBucket(rng, self, 256)
	tab.Add(Entry{ID: a, Addr: randAddr(rng)}, t0)
	if tab.MarkFailed(a, t0, t0.Add(2*time.Second)) || tab.MarkFailed(a, t0.Add(time.Second), t0.Add(3*time.Second)) {
		t.Fatal("FailureSpacing 0: a check that overlapped the failed one counted")
	}
	if !tab.MarkFailed(a, t0.Add(2*time.Second), t0.Add(4*time.Second)) {
		t.Fatal("FailureSpacing 0: a check sent after the failure counted last did not count")
	}
	cfg.FailureSpacing = -time.Second
	if _, err := NewTable(self, cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("a negative FailureSpacing: %v, want ErrInvalidConfig", err)
	}
}

// A check whose goroutine sent its request late (its deadline, fixed by the actor, mostly gone) or noticed its
// outcome late past the deadline failed because this node ran late, not the peer: checkStalled.
func TestCheckStalled(t *testing.T) {
	const timeout = 2 * time.Second
	deadline := t0.Add(timeout)
	for _, c := range []struct {
		name        string
		sent, ended time.Time
		want        bool
	}{
		{"on time, timed out", t0, deadline, false},
		{"on time, failed at once", t0.Add(time.Millisecond), t0.Add(2 * time.Millisecond), false},
		{"sent a little late", t0.Add(timeout/4 - time.Millisecond), deadline, false},
		{"sent a quarter late", t0.Add(timeout / 4), deadline, true},
		{"sent after its deadline", deadline.Add(time.Second), deadline.Add(time.Second), true},
		{"ended a little late", t0, deadline.Add(timeout/4 - time.Millisecond), false},
		{"ended a quarter late", t0, deadline.Add(timeout / 4), true},
	} {
		if got := checkStalled(deadline, c.sent, c.ended, timeout); got != c.want {
			t.Errorf("%s: checkStalled = %v, want %v", c.name, got, c.want)
		}
	}
}

// The revalidation passes over a failed entry until a check of it would count (Table.CheckDue): the nearest
// neighbour that failed a check is checked again FailureSpacing later, not at the next tick, and evicted then if it
// fails again. Until the review of stop 60 it was the nearest entry not answered at every tick, checked again at
// once, and two failed checks in one stall evicted it.
func TestAFailedNeighbourIsCheckedAgainOnlyWhenItsFailureWouldCount(t *testing.T) {
	rig := newRevalidationRig(t, 603)
	// Each check fails at its timeout: the one sent 4 ticks after a failed one is the first due.
	rig.cfg.Table.FailureSpacing = 4*rig.cfg.RevalidateInterval - rig.cfg.RequestTimeout
	rig.tab, _ = NewTable(rig.self, rig.cfg.Table)
	net := &busyNet{stallingNet: stallingNet{id: rig.self}, asked: make(chan session.NodeID, 1)}
	a := rig.actor(t, net)
	nearest := rig.addNeighbours()
	var checks []int // the ticks that checked the nearest neighbour
	now := t0
	for tick := 1; tick <= 5; tick++ {
		now = now.Add(rig.cfg.RevalidateInterval)
		a.revalidate(now)
		var peer session.NodeID
		select {
		case peer = <-net.asked:
		case <-time.After(5 * time.Second):
			t.Fatalf("tick %d asked nobody", tick)
		}
		a.wg.Wait()
		if peer == nearest {
			checks = append(checks, tick)
		}
		failed := now.Add(rig.cfg.RequestTimeout)
		a.exchangeDone(checkFailed(a, peer, context.DeadlineExceeded, failed), failed)
		if _, ok := rig.tab.Get(nearest); ok != (tick < 5) {
			t.Fatalf("after tick %d (checks of the nearest at ticks %v): the nearest in the table %v", tick, checks, ok)
		}
	}
	if len(checks) != 2 || checks[0] != 1 || checks[1] != 5 {
		t.Fatalf("the nearest neighbour checked at ticks %v, want 1 and 5 (FailureSpacing = 4 ticks)", checks)
	}
}

// A liveness check that failed because this node ran late (checkStalled: its goroutine sent the request with its
// deadline gone) is not held against the peer: its entry has no failure, and the revalidation passes over it until
// it has checked the others, as for a busy peer.
func TestALateCheckIsNotHeldAgainstThePeer(t *testing.T) {
	rig := newRevalidationRig(t, 604)
	a := rig.actor(t, &busyNet{stallingNet: stallingNet{id: rig.self}, asked: make(chan session.NodeID, 1)})
	nearest := rig.addNeighbours()
	at := t0.Add(time.Minute)
	m := checkFailed(a, nearest, context.DeadlineExceeded, at)
	m.sent = m.deadline // the goroutine ran once the deadline had passed
	a.inFlight, a.checking[nearest] = 1, true
	a.exchangeDone(m, at)
	if e, ok := rig.tab.Get(nearest); !ok || e.Failures != 0 || !a.passedOver(nearest) {
		t.Fatalf("in the table %v, Failures %d, passed over %v; want 0 failures, passed over", ok, e.Failures, a.passedOver(nearest))
	}
}

// A check the peer refused over its own connection (ErrPeerRefused: a goodbye, an error reply) ends a run of
// failures, as an answer would: the peer is up. It is not marked as having answered (it learned nothing of this
// node), and the revalidation passes over it until it has checked the others, as over a busy peer. A check that
// first waited for a local slot past a quarter of its time (LocalWaitError) is not held against the peer.
func TestARefusedCheckEndsARunOfFailures(t *testing.T) {
	rig := newRevalidationRig(t, 605)
	rig.cfg.Table.FailureSpacing = 0
	a := rig.actor(t, &busyNet{stallingNet: stallingNet{id: rig.self}, asked: make(chan session.NodeID, 1)})
	nearest := rig.addNeighbours()
	at := t0.Add(time.Minute)
	end := func(err error) Entry {
		a.inFlight, a.checking[nearest] = 1, true
		a.exchangeDone(checkFailed(a, nearest, err, at), at)
		at = at.Add(time.Second)
		e, ok := rig.tab.Get(nearest)
		if !ok {
			t.Fatalf("after %v: the entry evicted", err)
		}
		return e
	}
	if e := end(context.DeadlineExceeded); e.Failures != 1 {
		t.Fatalf("a timed-out check: Failures %d, want 1", e.Failures)
	}
	if e := end(fmt.Errorf("%w: goodbye", ErrPeerRefused)); e.Failures != 0 || e.Answered() || !a.passedOver(nearest) {
		t.Fatalf("a refused check: Failures %d, answered %v, passed over %v; want 0, not answered, passed over",
			e.Failures, e.Answered(), a.passedOver(nearest))
	}
	slot := &LocalWaitError{Waited: a.cfg.RequestTimeout / 2, Err: context.DeadlineExceeded}
	if e := end(slot); e.Failures != 0 {
		t.Fatalf("a check that waited half its time for a local slot: Failures %d, want 0", e.Failures)
	}
	if e := end(context.DeadlineExceeded); e.Failures != 1 {
		t.Fatalf("a timed-out check after the refusal: Failures %d, want 1 (a first failure again)", e.Failures)
	}
}
