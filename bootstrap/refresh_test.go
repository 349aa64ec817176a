package bootstrap

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

func TestRefreshScheduleDoublesUntilTheNeighbourhoodSettles(t *testing.T) {
	const first, full = 2 * time.Second, 5 * time.Minute
	r := newRefreshSchedule(first, full, nil)
	t0 := time.Unix(1000, 0)
	id := func(b byte) session.NodeID { return session.NodeID{b} }

	if !r.due(t0) {
		t.Fatal("the first refresh (the join's) is not due at once")
	}
	if r.start(t0) {
		t.Fatal("the join's refresh is full")
	}
	r.neighbourhood([]session.NodeID{id(1), id(2)})
	if r.due(t0.Add(first-time.Millisecond)) || !r.due(t0.Add(first)) {
		t.Fatalf("second refresh not due %v after the first", first)
	}
	// A new neighbour: the young table keeps refreshing, the gap doubling.
	t1 := t0.Add(first)
	r.start(t1)
	r.neighbourhood([]session.NodeID{id(3), id(1), id(2)})
	if r.due(t1.Add(2*first-time.Millisecond)) || !r.due(t1.Add(2*first)) {
		t.Fatalf("third refresh not due %v after the second", 2*first)
	}
	// The same neighbours, in another order, but 2 and 4 step intervals after: too soon to call them settled (a
	// network joining at once may still hide a neighbour from the few nodes a lookup asks); the gap keeps doubling.
	t2 := t1.Add(2 * first)
	for _, gap := range []time.Duration{4 * first, 8 * first} {
		if r.start(t2) {
			t.Fatal("an early refresh is full")
		}
		r.neighbourhood([]session.NodeID{id(2), id(3), id(1)})
		if r.due(t2.Add(gap-time.Millisecond)) || !r.due(t2.Add(gap)) {
			t.Fatalf("the neighbourhood looked settled after %v: next refresh not due %v later", gap/2, gap)
		}
		t2 = t2.Add(gap)
	}
	// Still the same, settleSteps step intervals after the last: settled, the next refresh is a full one,
	// RefreshInterval later.
	if r.start(t2) {
		t.Fatal("an early refresh is full")
	}
	r.neighbourhood([]session.NodeID{id(1), id(3), id(2)})
	if r.due(t2.Add(full - time.Millisecond)) {
		t.Fatal("a refresh is due before RefreshInterval once the neighbourhood settled")
	}
	t3 := t2.Add(full)
	if !r.due(t3) || !r.start(t3) {
		t.Fatal("the refresh RefreshInterval later is not due or not full")
	}
	if r.due(t3.Add(full-time.Millisecond)) || !r.due(t3.Add(full)) {
		t.Fatal("full refreshes are not RefreshInterval apart")
	}
}

func TestRefreshScheduleReachesTheFullIntervalWhileNeighboursKeepJoining(t *testing.T) {
	const first, full = time.Second, 10 * time.Second
	r := newRefreshSchedule(first, full, nil)
	now := time.Unix(1000, 0)
	var gaps []time.Duration
	for i := range 6 {
		r.start(now)
		r.neighbourhood([]session.NodeID{{byte(i)}}) // someone new each time
		gap := time.Duration(0)
		for !r.due(now.Add(gap)) {
			gap += 100 * time.Millisecond
		}
		gaps = append(gaps, gap)
		now = now.Add(gap)
	}
	want := []time.Duration{first, 2 * first, 4 * first, 8 * first, full, full}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("gaps %v, want %v", gaps, want)
		}
	}
}

// TestRefreshScheduleJittersTheFullInterval: the waits of the full interval go through the jitter (the early ones
// do not), and a refresh after a jittered wait is still a full one.
func TestRefreshScheduleJittersTheFullInterval(t *testing.T) {
	const first, full = time.Second, 8 * time.Second
	waits := []time.Duration{5 * time.Second, 11 * time.Second, 7 * time.Second}
	var asked []time.Duration
	r := newRefreshSchedule(first, full, func(d time.Duration) time.Duration {
		asked = append(asked, d)
		w := waits[0]
		waits = waits[1:]
		return w
	})
	now := time.Unix(1000, 0)
	var gaps []time.Duration
	var fulls []bool
	for range 6 {
		fulls = append(fulls, r.start(now))
		gap := time.Duration(0)
		for !r.due(now.Add(gap)) {
			gap += 100 * time.Millisecond
		}
		gaps = append(gaps, gap)
		now = now.Add(gap)
	}
	wantGaps := []time.Duration{first, 2 * first, 4 * first, 5 * time.Second, 11 * time.Second, 7 * time.Second}
	wantFulls := []bool{false, false, false, false, true, true}
	if !slices.Equal(gaps, wantGaps) || !slices.Equal(fulls, wantFulls) {
		t.Fatalf("gaps %v full %v, want %v and %v", gaps, fulls, wantGaps, wantFulls)
	}
	if !slices.Equal(asked, []time.Duration{full, full, full}) {
		t.Fatalf("jitter asked for %v, want the full interval three times", asked)
	}
	// A settled neighbourhood keeps the drawn wait: it does not draw again.
	r.neighbourhood([]session.NodeID{{1}})
	r.neighbourhood([]session.NodeID{{1}})
	if len(asked) != 3 {
		t.Fatalf("a settled neighbourhood drew another wait (%d draws)", len(asked))
	}
}

// A RefreshInterval meaning "never" (math.MaxInt64 passes Validate) schedules as a merely huge one does: doubling
// the gap overflowed and started the early refreshes over, and the jitter drew negative waits (25 refreshes a day,
// 4 of them full, against 5 and none).
func TestRefreshScheduleOfAnEndlessInterval(t *testing.T) {
	day := func(full time.Duration) (refreshes, fulls int) {
		cfg := DefaultConfig()
		cfg.RefreshInterval = full
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		b := &bootstrapper{rng: rand.New(rand.NewPCG(1, 2))}
		r := newRefreshSchedule(cfg.Interval, full, b.jittered)
		now := time.Unix(0, 0)
		for range 24 * time.Hour / cfg.Interval {
			now = now.Add(cfg.Interval)
			if r.due(now) {
				refreshes++
				if r.start(now) {
					fulls++
				}
				r.neighbourhood([]session.NodeID{{1}}) // the same neighbourhood each time: the schedule settles
			}
		}
		return refreshes, fulls
	}
	hr, hf := day(100000 * time.Hour)
	er, ef := day(math.MaxInt64)
	if er != hr || ef != 0 || hf != 0 {
		t.Fatalf("a day with RefreshInterval MaxInt64: %d refreshes (%d full); with 100000h: %d (%d full)", er, ef, hr, hf)
	}
	// Past half the full interval, the next gap is the full one: doubling it overflowed into the first again.
	r := newRefreshSchedule(2*time.Second, math.MaxInt64, nil)
	r.setGap(math.MaxInt64/2 + 1)
	if r.start(time.Unix(0, 0)); r.gap != math.MaxInt64 {
		t.Fatalf("the gap after one past half the full interval: %v, want the full interval", r.gap)
	}
	b := &bootstrapper{rng: rand.New(rand.NewPCG(3, 4))}
	for range 1000 {
		if w := b.jittered(math.MaxInt64); w < math.MaxInt64/4 {
			t.Fatalf("jittered(MaxInt64) = %v", w)
		}
	}
}
