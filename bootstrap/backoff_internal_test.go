package bootstrap

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/session"
)

// stepContext hands the bootstrapper one message, as its mailbox would.
type stepContext struct {
	actor.Context
	msg any
}

func (c stepContext) Message() any { return c.msg }

// A candidate's dial backoff meaning "never retry" (DialBackoffBase and DialBackoffMax at math.MaxInt64, which
// Validate takes) keeps the candidate out: Base plus the drawn delay overflowed into the past, and the candidate
// was dialed again at the next step.
func TestADialBackoffOfNeverDoesNotOverflow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DialBackoffBase, cfg.DialBackoffMax = math.MaxInt64, math.MaxInt64
	cfg.Interval = time.Hour // the step's timer must not fire during the test
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b := &bootstrapper{cfg: cfg, log: zerolog.Nop(), rng: rand.New(rand.NewPCG(1, 2)),
		backoff: map[session.NodeID]*candidateBackoff{}, refresh: newRefreshSchedule(cfg.Interval, cfg.RefreshInterval, nil)}
	id := session.NodeID{1}
	b.busy = true
	b.Receive(stepContext{msg: &stepDone{from: b, failed: []session.NodeID{id}}})
	defer b.timer.Stop()
	if cb := b.backoff[id]; cb == nil || !cb.until.After(time.Now().Add(100*365*24*time.Hour)) {
		t.Fatalf("the failed candidate's backoff: %+v, want one ending in a century at least", cb)
	}
}

// An Interval under a millisecond is refused: steps a nanosecond apart ran back to back.
func TestATinyStepIntervalIsRefused(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Interval = time.Nanosecond
	if err := cfg.Validate(); err == nil {
		t.Fatal("Interval of 1ns accepted")
	}
}
