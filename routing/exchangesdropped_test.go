package routing

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// A newcomer's liveness check that cannot start, MaxInFlight exchanges being in progress, counts in
// ExchangesDropped, not in Checks nor NewcomerChecks (documented as a subset of Checks), and keeps its CheckRate
// token: the next newcomer, once there is room, gets its check. Until stop 54 the check was counted and its token
// spent, and nothing ran (an audit's finding).
func TestANewcomerCheckThatCannotStartIsNotCounted(t *testing.T) {
	rig := newRevalidationRig(t, 73)
	rig.cfg.Table.KeepNearest = false
	rig.cfg.CheckBurst = 1 // one token: a dropped check that spent it would leave none for the next newcomer
	var err error
	if rig.tab, err = NewTable(rig.self, rig.cfg.Table); err != nil {
		t.Fatal(err)
	}
	a := rig.actor(t, &bookNet{id: rig.self, addrs: map[session.NodeID]string{}})
	const d = 250
	for i := range rig.cfg.Table.K { // a full bucket, its entries unseen for an hour: a newcomer calls for a check
		e := Entry{ID: idInBucket(rig.rng, rig.self, d), Addr: randAddr(rig.rng)}
		if r := rig.tab.Add(e, t0.Add(-time.Hour+time.Duration(i)*time.Second)); r.Status != Added {
			t.Fatalf("filling the bucket: %v", r.Status)
		}
	}
	newcomer := func(n byte) {
		t.Helper()
		for {
			id := identity(t, n)
			if LogDistance(rig.tab.SelfKey(), KeyOf(id.NodeID())) != d {
				n++
				continue
			}
			r, err := NewRecord(id, 1, []string{randAddr(rig.rng)})
			if err != nil {
				t.Fatal(err)
			}
			a.addRecord(r, t0, true, false)
			return
		}
	}
	a.inFlight = a.cfg.MaxInFlight // slow peers
	newcomer(1)
	a.wg.Wait()
	if st := a.stats; st.NewcomerChecks != 0 || st.Checks != 0 || st.ExchangesDropped != 1 {
		t.Fatalf("a newcomer check with no room: NewcomerChecks %d, Checks %d, ExchangesDropped %d; want 0, 0, 1",
			st.NewcomerChecks, st.Checks, st.ExchangesDropped)
	}
	a.inFlight = 0
	newcomer(100)
	a.wg.Wait()
	if st := a.stats; st.NewcomerChecks != 1 || st.Checks != 1 || st.Exchanges != 1 {
		t.Fatalf("the next newcomer, with room: NewcomerChecks %d, Checks %d, Exchanges %d; want 1, 1, 1 (the dropped check spent the token?)",
			st.NewcomerChecks, st.Checks, st.Exchanges)
	}
}

// A revalidation tick whose check of an answered entry cannot start (MaxInFlight exchanges in progress) counts in
// ExchangesDropped and leaves that check due: the next tick with room makes it. Before stop 54 the tick moved the
// answered entries' check 90 s on (on average) as if it had run.
func TestARevalidationThatCannotStartStaysDue(t *testing.T) {
	rig := newRevalidationRig(t, 74)
	a := rig.actor(t, &bookNet{id: rig.self, addrs: map[session.NodeID]string{}})
	answered := idInBucket(rig.rng, rig.self, 255)
	rig.tab.Add(Entry{ID: answered, Addr: "198.51.100.8:4001"}, t0)
	rig.tab.MarkAlive(answered, t0)
	rig.tab.Add(Entry{ID: idInBucket(rig.rng, rig.self, 256), Addr: randAddr(rig.rng)}, t0) // never answered
	a.answeredDue = t0

	a.inFlight = a.cfg.MaxInFlight
	a.revalidate(t0.Add(time.Minute))
	if a.stats.Checks != 0 || a.stats.ExchangesDropped != 1 || a.answeredDue != t0 {
		t.Fatalf("a tick with no room: Checks %d, ExchangesDropped %d, answered check due %v (was %v)",
			a.stats.Checks, a.stats.ExchangesDropped, a.answeredDue, t0)
	}
	a.inFlight = 0
	a.revalidate(t0.Add(2 * time.Minute))
	a.wg.Wait()
	if !a.checking[answered] || a.stats.Checks != 1 {
		t.Fatalf("the next tick did not check the answered entry (Checks %d, checking %v)", a.stats.Checks, a.checking)
	}
}

// A newcomer's check that CheckRate refuses is no exchange dropped for MaxInFlight: each newcomer record for a
// full bucket counted one while MaxInFlight were busy, up to 16 per answer against CheckRate's one per 5 s (a
// review's finding).
func TestRateRefusedNewcomerChecksAreNotDroppedExchanges(t *testing.T) {
	rig := newRevalidationRig(t, 731)
	rig.cfg.Table.KeepNearest = false
	rig.cfg.CheckBurst = 1
	var err error
	if rig.tab, err = NewTable(rig.self, rig.cfg.Table); err != nil {
		t.Fatal(err)
	}
	a := rig.actor(t, &bookNet{id: rig.self, addrs: map[session.NodeID]string{}})
	const d = 250
	for i := range rig.cfg.Table.K {
		e := Entry{ID: idInBucket(rig.rng, rig.self, d), Addr: randAddr(rig.rng)}
		if r := rig.tab.Add(e, t0.Add(-time.Hour+time.Duration(i)*time.Second)); r.Status != Added {
			t.Fatalf("filling the bucket: %v", r.Status)
		}
	}
	n := byte(1)
	newcomer := func() {
		t.Helper()
		for {
			id := identity(t, n)
			n++
			if LogDistance(rig.tab.SelfKey(), KeyOf(id.NodeID())) != d {
				continue
			}
			r, err := NewRecord(id, 1, []string{randAddr(rig.rng)})
			if err != nil {
				t.Fatal(err)
			}
			a.addRecord(r, t0, true, false)
			return
		}
	}
	if !a.checks.Allow(true, t0) { // the CheckRate token is spent: no newcomer check may run at t0
		t.Fatal("no token to spend")
	}
	a.inFlight = a.cfg.MaxInFlight
	for range 10 {
		newcomer()
	}
	a.inFlight = 0
	newcomer()
	a.wg.Wait()
	if st := a.stats; st.NewcomerChecks != 0 {
		t.Fatalf("NewcomerChecks %d: the rate should refuse every check at t0", st.NewcomerChecks)
	}
	if st := a.stats; st.ExchangesDropped != 0 {
		t.Errorf("ExchangesDropped %d for 10 newcomer checks the CheckRate refused anyway (none could have run), want 0", st.ExchangesDropped)
	}
}
