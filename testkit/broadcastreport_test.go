package testkit

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/gossip"
)

func TestMedianMs(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		v    []float64
		want float64
	}{
		{nil, -1},
		{[]float64{7}, 7},
		{[]float64{inf}, -1},
		{[]float64{30, 10, 20}, 20},
		{[]float64{10, inf, 20}, 20},
		{[]float64{40, 10}, 25},
		{[]float64{40, 10, 30, 20}, 25},
		{[]float64{10, inf}, -1}, // the upper middle message never got there
		{[]float64{inf, 10, 20, inf}, -1},
		{[]float64{10.004, 10.011}, 10.01},
	} {
		in := slices.Clone(c.v)
		if got := MedianMs(c.v); got != c.want {
			t.Errorf("MedianMs(%v) = %v, want %v", in, got, c.want)
		}
		if !slices.Equal(in, c.v) {
			t.Errorf("MedianMs sorted its argument: %v", c.v)
		}
	}
}

// With an even number of messages, half of which never reached every live node, p100 reads -1: it read the
// other half's delay (the lower of the two middle values).
func TestEvenMessageCountHalfNeverEverywhere(t *testing.T) {
	const nodes = 11 // node 0 publishes both messages to 10 receivers
	subscribed := make([]int, nodes)
	for i := range subscribed {
		subscribed[i] = i
	}
	sims := simNodes(nodes, 2, subscribed...)
	t0 := time.Unix(1000, 0)
	published := []time.Time{t0, t0.Add(time.Second)}
	for i := 1; i < nodes; i++ {
		sims[i].recv[0].Store(published[0].Add(50 * time.Millisecond).UnixNano())
		if i <= 8 { // message 1 misses the last two receivers
			sims[i].recv[1].Store(published[1].Add(30 * time.Millisecond).UnixNano())
		}
	}
	var rep BroadcastReport
	summarize(&rep, sims, []int{0, 0}, published)
	if rep.P50Ms != 40 || rep.P100Ms != -1 || rep.SlowMessages != 1 {
		t.Fatalf("p50 %v, p100 %v, slow %d: want 40 (the mean of 30 and 50), -1 and 1", rep.P50Ms, rep.P100Ms, rep.SlowMessages)
	}
}

// The after-window figure takes out the idle rate of the nodes alive only: a killed node (no stats) costs nothing.
func TestIdleCPUCountsTheLiveNodesOnly(t *testing.T) {
	st := &gossip.RelayStats{}
	got := idleCPU(100, []*gossip.RelayStats{st, nil, st, nil}, 2*time.Second)
	if want := 400 * time.Microsecond; got != want {
		t.Fatalf("idleCPU over 2 live nodes of 4 at 100 µs per node-second for 2 s: %v, want %v", got, want)
	}
}
