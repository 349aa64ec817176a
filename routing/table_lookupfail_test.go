package routing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// An entry whose requests from the node's lookups went unanswered MaxLookupFailures times in a row is removed, and
// the most recent replacement takes its place, as after failed liveness checks; one fewer leaves it, and its
// liveness checks' count (Failures) alone. Until stop 60 a lookup's failures were held against nobody: such an
// entry (gone, or made up by a hostile answerer) stayed until the revalidation reached it.
func TestAnEntryIsRemovedAfterMaxLookupFailuresFailedRequestsInARow(t *testing.T) {
	tab, a, b, x, y := waitingRig(t, 601)
	max := tab.Config().MaxLookupFailures
	if max < 2 {
		t.Fatalf("MaxLookupFailures %d: the test needs at least 2", max)
	}
	for n := 1; n < max; n++ {
		if tab.MarkLookupFailed(a, t0.Add(time.Minute), t0.Add(time.Minute)) {
			t.Fatalf("removed at its failed lookup request %d of %d", n, max)
		}
	}
	if e, ok := tab.Get(a); !ok || e.LookupFailures != max-1 || e.Failures != 0 || !e.Answered() {
		t.Fatalf("after %d failed lookup requests: in the table %v, %+v; want LookupFailures %d, Failures 0, still answered",
			max-1, ok, e, max-1)
	}
	if !tab.MarkLookupFailed(a, t0.Add(time.Minute), t0.Add(time.Minute)) {
		t.Fatalf("not removed at its failed lookup request %d of %d", max, max)
	}
	if _, ok := tab.Get(a); ok || tab.Len() != 2 {
		t.Fatalf("a still in the table (%v), %d entries; want it replaced", ok, tab.Len())
	}
	if _, ok := tab.Get(y); !ok {
		t.Fatal("the most recent replacement did not take the removed entry's place")
	}
	if _, ok := tab.Get(b); !ok {
		t.Fatal("another entry of the bucket went too")
	}
	if _, ok := tab.Get(x); ok {
		t.Fatal("two replacements promoted for one entry removed")
	}
}

// Only failures in a row count: an answer of the node's (MarkAlive, from a lookup, a check or its own request) starts
// the count over, so that a busy node that misses a request now and then stays.
func TestAnAnswerBetweenFailedLookupRequestsStartsTheCountOver(t *testing.T) {
	tab, a, _, _, _ := waitingRig(t, 602)
	max := tab.Config().MaxLookupFailures
	for round := range 3 {
		for range max - 1 {
			if tab.MarkLookupFailed(a, t0.Add(time.Minute), t0.Add(time.Minute)) {
				t.Fatalf("round %d: removed with an answer after every %d failures", round, max-1)
			}
		}
		tab.MarkAlive(a, t0.Add(time.Minute))
		if e, _ := tab.Get(a); e.LookupFailures != 0 {
			t.Fatalf("round %d: LookupFailures %d after an answer, want 0", round, e.LookupFailures)
		}
	}
	for range max - 1 {
		tab.MarkLookupFailed(a, t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	}
	if !tab.MarkLookupFailed(a, t0.Add(2*time.Minute), t0.Add(2*time.Minute)) {
		t.Fatalf("not removed at %d failed lookup requests in a row after its last answer", max)
	}
}

// The lookups' failures and the liveness checks' are counted apart: MaxFailures-1 failed checks and
// MaxLookupFailures-1 failed lookup requests evict nothing (with a shared count, one lost check and one lost lookup
// request would have evicted what MaxFailures checks must), and a lookup's failure resets no check's.
func TestFailedLookupRequestsAndFailedChecksAreCountedApart(t *testing.T) {
	rng := newRand(603)
	self := randID(rng)
	cfg := noLimits()
	cfg.MaxFailures, cfg.MaxLookupFailures, cfg.LookupFailureSpacing = 2, 3, 0
	tab, err := NewTable(self, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := idInBucket(rng, self, 256)
	tab.Add(Entry{ID: a, Addr: randAddr(rng)}, t0)
	if tab.MarkFailed(a, t0, t0) || tab.MarkLookupFailed(a, t0, t0) || tab.MarkLookupFailed(a, t0, t0) {
		t.Fatal("removed before either count reached its limit")
	}
	if e, ok := tab.Get(a); !ok || e.Failures != 1 || e.LookupFailures != 2 {
		t.Fatalf("in the table %v, Failures %d, LookupFailures %d; want 1 and 2", ok, e.Failures, e.LookupFailures)
	}
	if later := t0.Add(time.Minute); !tab.MarkFailed(a, later, later) {
		t.Fatal("the second failed check did not evict the entry: a lookup's failure reset the checks' count")
	}
}

// A node waiting in a replacement cache follows the same rule: dropped from the cache at its MaxLookupFailures-th
// failed lookup request in a row, and hearing of it again does not reset its count.
func TestAWaitingNodeIsDroppedAfterMaxLookupFailuresFailedRequests(t *testing.T) {
	tab, _, _, x, _ := waitingRig(t, 604)
	max := tab.Config().MaxLookupFailures
	waiting := func() bool { return tab.ReplacementLens()[KeyBits-1] == 2 }
	for range max - 1 {
		if tab.MarkLookupFailed(x, t0, t0) || !waiting() {
			t.Fatal("a waiting node dropped before MaxLookupFailures failed lookup requests")
		}
	}
	tab.Add(Entry{ID: x, Addr: "70.0.0.1:1"}, t0) // heard of again: no sign of life
	if !tab.MarkLookupFailed(x, t0, t0) || waiting() {
		t.Fatal("a waiting node not dropped at its MaxLookupFailures-th failed lookup request in a row")
	}
}

// MaxLookupFailures = 0 holds no lookup's failure against the table; a negative value is refused.
func TestMaxLookupFailuresZeroCountsNothing(t *testing.T) {
	rng := newRand(605)
	self := randID(rng)
	cfg := noLimits()
	cfg.MaxLookupFailures = 0
	tab, err := NewTable(self, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := randID(rng)
	tab.Add(Entry{ID: a, Addr: randAddr(rng)}, t0)
	for range 10 {
		if tab.MarkLookupFailed(a, t0, t0) {
			t.Fatal("an entry removed for its lookups' failures with MaxLookupFailures = 0")
		}
	}
	cfg.MaxLookupFailures = -1
	if _, err := NewTable(self, cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("MaxLookupFailures -1: %v, want ErrInvalidConfig", err)
	}
}

// A lookup lists the nodes reported Unreachable (not those merely Failed) only when some node answered it: a lookup
// that reached nobody says more about the node's own network than about the nodes it asked.
func TestALookupListsItsUnreachedNodesOnlyWhenSomebodyAnswered(t *testing.T) {
	rng := newRand(606)
	self := randID(rng)
	var seeds []Entry
	for range 4 {
		seeds = append(seeds, Entry{ID: randID(rng), Addr: randAddr(rng)})
	}
	l := NewLookup(randKey(rng), self, seeds, 4, 0, 20)
	asked := l.Next()
	if len(asked) != 4 {
		t.Fatalf("asked %d of 4 seeds", len(asked))
	}
	l.Unreachable(asked[0].ID)
	l.Failed(asked[1].ID) // an error that proves nothing against the node
	l.Unreachable(asked[0].ID)
	if got := l.Unreached(); got != nil {
		t.Fatalf("Unreached %v before any answer, want nil", got)
	}
	l.Succeeded(asked[2].ID, nil)
	l.Unreachable(asked[2].ID) // answered already: not in flight, ignored
	l.Unreachable(asked[3].ID)
	if got, want := l.Unreached(), []session.NodeID{asked[0].ID, asked[3].ID}; !slices.Equal(got, want) {
		t.Fatalf("Unreached %v, want %v", got, want)
	}

	nobody := NewLookup(randKey(rng), self, seeds, 4, 0, 20)
	for _, e := range nobody.Next() {
		nobody.Unreachable(e.ID)
	}
	if !nobody.Done() || nobody.Unreached() != nil {
		t.Fatalf("a lookup nobody answered: done %v, Unreached %v; want done, nil", nobody.Done(), nobody.Unreached())
	}
}

// Which failed requests of a lookup are held against the node asked: timeouts, failed dials and the like, not the
// lookup's own end, nor a failure that proves nothing against the peer (ErrPeerBusy), nor a protocol violation
// (penalized apart).
func TestWhichLookupFailuresAreHeldAgainstTheNode(t *testing.T) {
	ended := context.Canceled
	for _, c := range []struct {
		name     string
		err, ctx error
		held     bool
	}{
		{"timeout", fmt.Errorf("request timed out: %w", context.DeadlineExceeded), nil, true},
		{"dial refused", errors.New("peer unreachable: connection refused"), nil, true},
		{"timeout as the lookup ended", context.DeadlineExceeded, ended, false},
		{"the caller's deadline", context.DeadlineExceeded, context.DeadlineExceeded, false},
		{"cancelled", context.Canceled, nil, false},
		{"cancelled by the lookup's end", context.Canceled, ended, false},
		{"busy", fmt.Errorf("%w: too many peers", ErrPeerBusy), nil, false},
		{"this node closing", fmt.Errorf("%w: node is closed", ErrPeerBusy), nil, false},
		{"oversized reply", ErrOversizedReply, nil, false},
		{"forged sender", fmt.Errorf("x: %w", ErrForgedSender), nil, false},
		{"no error", nil, nil, false},
	} {
		if got := heldAgainst(c.err, c.ctx); got != c.held {
			t.Errorf("%s: held against the node %v, want %v", c.name, got, c.held)
		}
	}
}

// A lookup request sent before the last failure counted against an entry failed in the same stall and is not
// counted again (overlapping lookups that each asked a node that paused once made a run of MaxLookupFailures, a
// review's finding); one sent at or after it is, and so is, after an answer, the first failure whenever its request
// left.
func TestOverlappingLookupRequestsCountOnce(t *testing.T) {
	tab, a, _, _, _ := waitingRig(t, 603)
	max := tab.Config().MaxLookupFailures
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// The first failure, then max more of requests sent while it was in flight.
	if tab.MarkLookupFailed(a, at(0), at(2)) {
		t.Fatal("removed at its first failure")
	}
	for n := range max {
		if tab.MarkLookupFailed(a, at(1), at(3+n)) {
			t.Fatalf("removed by request %d sent before the failure counted", n)
		}
	}
	if e, _ := tab.Get(a); e.LookupFailures != 1 || !e.LookupFailedAt.Equal(at(2)) {
		t.Fatalf("LookupFailures %d, LookupFailedAt %v; want 1 at %v", e.LookupFailures, e.LookupFailedAt, at(2))
	}
	for n := 2; n <= max; n++ { // a run: each request sent after the failure before it
		if removed := tab.MarkLookupFailed(a, at(10*n), at(10*n+2)); removed != (n == max) {
			t.Fatalf("failure %d of %d in a row: removed %v", n, max, removed)
		}
	}

	tab, a, _, _, _ = waitingRig(t, 604)
	tab.MarkLookupFailed(a, at(5), at(7))
	tab.MarkAlive(a, at(8))
	if tab.MarkLookupFailed(a, at(6), at(9)); mustGet(t, tab, a).LookupFailures != 1 {
		t.Fatal("after an answer, a failure of a request sent before it was not counted")
	}
}

func mustGet(t *testing.T, tab *Table, id session.NodeID) Entry {
	t.Helper()
	e, ok := tab.Get(id)
	if !ok {
		t.Fatalf("%s not in the table", id.Short())
	}
	return e
}

// Failed lookup requests count only LookupFailureSpacing apart: one sent sooner after the failure counted last
// failed in the same stall (lookups seconds apart on a loaded host removed over a hundred live nodes in a 500-node
// join). A node that stays silent goes at the MaxLookupFailures-th failure so spaced; a negative spacing is refused.
func TestLookupFailuresCountOnlyLookupFailureSpacingApart(t *testing.T) {
	rng := newRand(607)
	self := randID(rng)
	cfg := noLimits()
	cfg.MaxLookupFailures, cfg.LookupFailureSpacing = 3, 30*time.Second
	tab, err := NewTable(self, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := randID(rng)
	tab.Add(Entry{ID: a, Addr: randAddr(rng)}, t0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for s := 1; s < 30; s += 3 { // the first counts, the rest within 30 s of it do not
		if tab.MarkLookupFailed(a, at(s), at(s+2)) {
			t.Fatalf("removed by a failure sent %d s in", s)
		}
	}
	if e, _ := tab.Get(a); e.LookupFailures != 1 {
		t.Fatalf("LookupFailures %d after failures within 30 s of the first, want 1", e.LookupFailures)
	}
	if tab.MarkLookupFailed(a, at(33), at(35)) || !tab.MarkLookupFailed(a, at(65), at(67)) {
		t.Fatal("not removed at the third failure, each sent 30 s or more after the one counted before")
	}
	cfg.LookupFailureSpacing = -time.Second
	if _, err := NewTable(self, cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("LookupFailureSpacing -1s: %v, want ErrInvalidConfig", err)
	}
}
