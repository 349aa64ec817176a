package gossip

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// The Router's validation: verdicts, timeouts and the bounds on the messages awaiting theirs.

// A verdict that reports the validators' time ran out (the relay's verdictOf, when ValidationTimeout ended their
// context) ignores the message whatever the verdict and counts it in TimedOut as well as Ignored. Only the
// heartbeat's expiry counted TimedOut until stop 54, and a validator that honours its context always beats it.
func TestAVerdictPastValidationTimeoutCountsAsTimedOut(t *testing.T) {
	cfg := DefaultConfig()
	r := joined(t, cfg, 3)
	late, quick := msg("late"), msg("quick")
	for _, m := range []*Message{late, quick} {
		if _, st := r.HandleMessage(t0, nid(1), m); st != Pending {
			t.Fatal(st)
		}
	}
	now := t0.Add(cfg.ValidationTimeout)
	if out := r.validated(now, late.ID, late, Accept, true); len(out.Deliver)+len(out.Send) != 0 {
		t.Errorf("a verdict past the timeout delivered or sent: %+v", out)
	}
	r.validated(now, quick.ID, quick, Ignore, false)
	if st := r.Stats(); st.TimedOut != 1 || st.Ignored != 2 || st.Delivered != 0 {
		t.Errorf("TimedOut %d, Ignored %d, Delivered %d; want 1, 2 (the timeout included), 0", st.TimedOut, st.Ignored, st.Delivered)
	}
	if _, st := r.HandleMessage(now, nid(2), msg("late")); st != Pending {
		t.Errorf("a message timed out again: %v, want pending (its id forgotten)", st)
	}
}

func TestValidation(t *testing.T) {
	cfg := DefaultConfig()
	r := joined(t, cfg, 3)
	for k := 1; k <= cfg.PenaltyThreshold; k++ {
		out, _ := receive(t, r, t0, nid(1), msg(fmt.Sprint("bad", k)), Reject)
		want := []Penalty{{Peer: nid(1), Count: k, Ban: k == cfg.PenaltyThreshold}}
		if len(out.Send) != 0 || len(out.Deliver) != 0 || !slices.Equal(out.Penalize, want) {
			t.Errorf("reject %d: output %+v, want only the penalty %+v", k, out, want)
		}
	}
	out, _ := receive(t, r, t0, nid(2), msg("dull"), Ignore)
	if len(out.Send)+len(out.Deliver)+len(out.Penalize) != 0 {
		t.Errorf("ignore: output %+v, want none", out)
	}
	// Their ids are forgotten: another copy is validated afresh.
	if _, st := r.HandleMessage(t0, nid(3), msg("dull")); st != Pending {
		t.Errorf("an ignored message again: %v, want pending", st)
	}
	if _, st := r.HandleMessage(t0, nid(3), msg("bad1")); st != Pending {
		t.Errorf("a rejected message again: %v, want pending", st)
	}
	r.Validated(t0, DefaultMsgID(msg("dull")), Accept)
	r.Validated(t0, DefaultMsgID(msg("bad1")), Accept)
	// A verdict that does not come in time counts as ignored.
	m := msg("slow")
	r.HandleMessage(t0, nid(2), m)
	r.Heartbeat(t0.Add(cfg.ValidationTimeout))
	if out := r.Validated(t0.Add(cfg.ValidationTimeout), m.ID, Accept); len(out.Send)+len(out.Deliver) != 0 {
		t.Errorf("late accept: output %+v, want none", out)
	}
	if st := r.Stats(); st.Rejected != 3 || st.Ignored != 2 || st.TimedOut != 1 || st.Delivered != 2 {
		t.Errorf("stats %+v, want 3 rejected, 2 ignored (1 timed out), 2 delivered", st)
	}
	if _, st := r.HandleMessage(t0, nid(3), m); st != Pending {
		t.Errorf("a message timed out again: %v, want pending", st)
	}
}

func TestPendingValidationBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPendingValidation = 2
	r := joined(t, cfg, 1)
	for k, want := range []Status{Pending, Pending, Dropped} {
		if _, st := r.HandleMessage(t0, nid(1), msg(fmt.Sprint(k))); st != want {
			t.Errorf("message %d: %v, want %v", k, st, want)
		}
	}
	if st := r.Stats(); st.Dropped != 1 || st.Stale != 0 {
		t.Errorf("Dropped %d, Stale %d; want the message past the bound counted in Dropped only", st.Dropped, st.Stale)
	}
	// A dropped message was not recorded as seen: it may come again.
	r.Validated(t0, DefaultMsgID(msg("0")), Accept)
	if _, st := r.HandleMessage(t0, nid(1), msg("2")); st != Pending {
		t.Errorf("dropped message again: %v, want pending", st)
	}
}

// One peer takes at most MaxPendingValidationPerPeer places among the messages awaiting a verdict: a peer keeping
// a slow validator busy cannot stop the others' messages from being validated. A verdict, or a timeout, gives the
// place back.
func TestPendingValidationBoundedPerPeer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPendingValidationPerPeer = 2
	r := joined(t, cfg, 2)
	for k, want := range []Status{Pending, Pending, Dropped} {
		if _, st := r.HandleMessage(t0, nid(1), msg(fmt.Sprint("a", k))); st != want {
			t.Errorf("peer 1's message %d: %v, want %v", k, st, want)
		}
	}
	if _, st := r.HandleMessage(t0, nid(2), msg("b")); st != Pending {
		t.Errorf("peer 2's message with peer 1 at its cap: %v, want pending", st)
	}
	r.Validated(t0, DefaultMsgID(msg("a0")), Accept)
	if _, st := r.HandleMessage(t0, nid(1), msg("a2")); st != Pending {
		t.Errorf("peer 1's message after a verdict: %v, want pending", st)
	}
	r.Heartbeat(t0.Add(cfg.ValidationTimeout)) // a1 and a2 time out
	if _, st := r.HandleMessage(t0.Add(cfg.ValidationTimeout), nid(1), msg("a3")); st != Pending {
		t.Errorf("peer 1's message after the timeouts: %v, want pending", st)
	}
}

// The messages awaiting a verdict are bounded in payload bytes too, per peer and in all: behind a slow validator,
// the counts alone let one peer hold 256 messages of 512 KiB. A peer with nothing pending, or a node with nothing
// pending, takes a message of any size; a verdict gives the bytes back.
func TestPendingValidationBoundedInBytes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPendingValidationBytesPerPeer, cfg.MaxPendingValidationBytes = 10, 16
	r := joined(t, cfg, 3)
	sized := func(tag string, n int) *Message { return msg(tag + strings.Repeat("x", n-len(tag))) }
	steps := []struct {
		from int
		m    *Message
		want Status
	}{
		{1, sized("a0", 6), Pending},
		{1, sized("a1", 6), Dropped},  // peer 1 would hold 12 of its 10
		{1, sized("a2", 4), Pending},  // 10 of 10
		{2, sized("b0", 20), Dropped}, // peer 2 holds nothing, but 30 of the node's 16
		{2, sized("b1", 6), Pending},  // 16 of 16
		{3, sized("c", 1), Dropped},   // the node is full
	}
	for _, s := range steps {
		if _, st := r.HandleMessage(t0, nid(s.from), s.m); st != s.want {
			t.Errorf("peer %d's %d bytes: %v, want %v", s.from, len(s.m.Data), st, s.want)
		}
	}
	r.Validated(t0, DefaultMsgID(sized("a0", 6)), Accept)
	if _, st := r.HandleMessage(t0, nid(3), sized("c1", 6)); st != Pending {
		t.Errorf("after a verdict freed 6 bytes, a 6-byte message: %v, want pending", st)
	}
	r2 := joined(t, cfg, 1)
	if _, st := r2.HandleMessage(t0, nid(1), sized("big", 100)); st != Pending {
		t.Errorf("a message over both byte limits with nothing pending: %v, want pending", st)
	}
	// A verdict gives its bytes back to the peer's share as well.
	r3 := joined(t, cfg, 1)
	r3.HandleMessage(t0, nid(1), sized("d0", 6))
	r3.HandleMessage(t0, nid(1), sized("d1", 4))
	r3.Validated(t0, DefaultMsgID(sized("d0", 6)), Accept)
	if _, st := r3.HandleMessage(t0, nid(1), sized("d2", 6)); st != Pending {
		t.Errorf("after a verdict freed 6 of the peer's 10 bytes, its 6-byte message: %v, want pending", st)
	}
}

// The validators stop at the first that rejects: the verdict is Reject whatever the others say, and the relay does
// not make them work for it.
func TestValidatorsStopAtTheFirstReject(t *testing.T) {
	a := &relayActor{cfg: DefaultRelayConfig()}
	calls := 0
	count := func(context.Context, *Delivery) Verdict { calls++; return Accept }
	reject := func(context.Context, *Delivery) Verdict { calls++; return Reject }
	verdict, timedOut := a.verdictOf(context.Background(), &Delivery{}, []Validator{count, reject, count})
	if verdict != Reject || timedOut || calls != 2 {
		t.Fatalf("verdict %v (timed out %v) after %d validator calls, want Reject after 2", verdict, timedOut, calls)
	}
}
