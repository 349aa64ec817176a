package testkit

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// delivered records, for each receiver i (from 1), message m's delivery delays[i-1] ms after its publication.
func delivered(sims []*simNode, m int, published time.Time, delays ...int) {
	for i, d := range delays {
		sims[i+1].recv[m].Store(published.Add(time.Duration(d) * time.Millisecond).UnixNano())
	}
}

// The delay until X% of the receivers is that of the ceil(X% of them)-th delivery (p90 of four receivers is the
// fourth's, not the third's); the figures hold the handler's duplicates, and a message whose p100 is exactly twice
// the median p100 is not slow (slow: more than twice).
func TestTheSummaryPercentilesDuplicatesAndSlowMessages(t *testing.T) {
	sims := simNodes(5, 3, 0, 1, 2, 3, 4)
	t0 := time.Unix(1000, 0)
	published := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second)}
	delivered(sims, 0, published[0], 10, 20, 30, 40)
	delivered(sims, 1, published[1], 10, 20, 30, 40)
	delivered(sims, 2, published[2], 10, 20, 30, 80) // p100 twice the median's
	sims[2].dups.Store(2)
	sims[4].dups.Store(1)
	var rep BroadcastReport
	summarize(&rep, sims, []int{0, 0, 0}, published)
	if rep.P50Ms != 20 || rep.P90Ms != 40 || rep.P99Ms != 40 || rep.P100Ms != 40 {
		t.Errorf("p50 %v, p90 %v, p99 %v, p100 %v: want 20, 40, 40, 40", rep.P50Ms, rep.P90Ms, rep.P99Ms, rep.P100Ms)
	}
	if rep.SlowMessages != 0 {
		t.Errorf("%d slow messages, want 0 (80 ms is not more than twice the median p100 of 40)", rep.SlowMessages)
	}
	if rep.HandlerDuplicates != 3 {
		t.Errorf("%d handler duplicates, want 3", rep.HandlerDuplicates)
	}
}

// A message whose publication failed counts as delivered to nobody, in the summary and in the detail, even when a
// node recorded it (a Publish that failed after sending): its delay would be counted from the zero time.
func TestAFailedPublicationCountsNoDelivery(t *testing.T) {
	sims := simNodes(3, 2, 0, 1, 2)
	t0 := time.Unix(1000, 0)
	published := []time.Time{t0, {}}
	delivered(sims, 0, t0, 10, 10)
	delivered(sims, 1, t0, 10, 10)
	var rep BroadcastReport
	summarize(&rep, sims, []int{0, 0}, published)
	if rep.Deliveries != 2 || rep.DeliveryRatio != 0.5 {
		t.Errorf("deliveries %d, ratio %v: want 2 and 0.5", rep.Deliveries, rep.DeliveryRatio)
	}
	d := detail(sims, []int{0, 0}, published, []time.Time{t0, t0})
	if d.DelayCount != 2 || len(d.Messages[1].Delays) != 0 || d.Messages[1].Expected != 2 {
		t.Errorf("detail: %d delays, the failed message's %v of %d expected: want 2, none of 2",
			d.DelayCount, d.Messages[1].Delays, d.Messages[1].Expected)
	}
}

// percentile is the nearest rank: the ceil(p*n)-th value.
func TestPercentileIsTheNearestRank(t *testing.T) {
	v := []int{1, 2, 3, 4}
	for _, c := range []struct {
		p    float64
		want int
	}{{0.25, 1}, {0.5, 2}, {0.51, 3}, {0.99, 4}, {1, 4}} {
		if got := percentile(v, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %d, want %d", v, c.p, got, c.want)
		}
	}
}

// The wire bytes count what a write wrote, not what it was asked to: a write that fails writes nothing.
func TestTheWireBytesCountWhatWasWritten(t *testing.T) {
	a, b := net.Pipe()
	b.Close()
	var written atomic.Int64
	c := NewLinkConn(a, 0, &written)
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err == nil {
		t.Fatalf("write to a closed pipe: %v, want an error", err)
	}
	if n := written.Load(); n != 0 {
		t.Fatalf("%d bytes counted for a failed write, want 0", n)
	}
}

// The background per delivery is the idle rate of every node started over the window, spread over the deliveries;
// the marginal cost is the rest: 300 µs per node-second at N = 200 over 5 s is 300 000 µs, 30 µs a delivery for
// 10 000 deliveries.
func TestTheCPUSplitIntoBackgroundAndMarginal(t *testing.T) {
	background, marginal := splitCPU(300, 200, 5, 150, 10000)
	if background != 30 || marginal != 120 {
		t.Fatalf("background %v, marginal %v µs per delivery; want 30 and 120", background, marginal)
	}
}
