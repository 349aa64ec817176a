package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// An overflow of the event log's subscription makes one warning, run's, with the count of the events dropped: the
// node logged a warning of its own (without the count) for the same overflow.
func TestAnEventLogOverflowIsOneWarningWithItsCount(t *testing.T) {
	var logs testkit.SyncBuffer
	log := zerolog.New(&logs)
	nw := testkit.NewNetwork(t, 4, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.Logger = log
	}))
	a := nw.Nodes[0]
	events, err := subscribeEventLog(a, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, b := range nw.Nodes[1:] { // three PeerConnected: one kept, two dropped
		if err := b.Connect(ctx, a.Addr(), false); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return events.Dropped() == 2 }, "two events dropped")
	done := make(chan struct{})
	go func() { defer close(done); logEvents(log, a, events) }()
	events.Close()
	<-done
	var warnings []string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"level":"warn"`) {
			warnings = append(warnings, line)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `"dropped":2`) {
		t.Fatalf("warnings of the overflow:\n%s\nwant one, with dropped 2", strings.Join(warnings, "\n"))
	}
}

// A log that stays behind warns at most once a dropWarnInterval, with every event dropped since its last warning,
// and once more at its end for those left; nothing when none was dropped.
func TestDroppedEventWarningsAreRateLimited(t *testing.T) {
	w := dropWarning{every: dropWarnInterval}
	if _, ok := w.due(0, t0, false); ok {
		t.Fatal("a warning with nothing dropped")
	}
	if n, ok := w.due(3, t0, false); !ok || n != 3 {
		t.Fatalf("the first drops: %d %v, want 3 true", n, ok)
	}
	for i, d := range []uint64{4, 9, 12} {
		if _, ok := w.due(d, t0.Add(time.Duration(i+1)*time.Second), false); ok {
			t.Fatalf("a second warning %v after the first", time.Duration(i+1)*time.Second)
		}
	}
	if n, ok := w.due(12, t0.Add(dropWarnInterval), false); !ok || n != 9 {
		t.Fatalf("an interval after the first warning: %d %v, want the 9 dropped since, true", n, ok)
	}
	if n, ok := w.due(13, t0.Add(dropWarnInterval+time.Second), true); !ok || n != 1 {
		t.Fatalf("at the end: %d %v, want the one left, true", n, ok)
	}
	if _, ok := w.due(13, t0.Add(time.Hour), true); ok {
		t.Fatal("a final warning with nothing left")
	}
}

// t0 is an arbitrary time for the tests of pure functions.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
