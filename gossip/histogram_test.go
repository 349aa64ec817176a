package gossip

import (
	"slices"
	"testing"
)

// A Histogram's bounds are inclusive upper bounds: a value equal to a bound is counted in that bound's bucket, as in
// Prometheus's le buckets the metrics export these histograms to (a hop count of 1 is in the bucket of bound 1, a
// 5 ms delay in the bucket of bound 5); a value above the last bound goes to the implicit last bucket. Quantile reads
// the buckets the same way, so the median of hop counts 0, 1, 1, 2 is 1, not 2.
func TestHistogramBoundsAreInclusiveUpperBounds(t *testing.T) {
	hops := newHistogram(hopBounds())
	for _, v := range []float64{0, 1, 1, 2, 17} {
		hops.observe(v)
	}
	if want := []uint64{1, 2, 1}; !slices.Equal(hops.Counts[:3], want) {
		t.Errorf("hop counts 0, 1, 1, 2: buckets %v, want %v", hops.Counts[:3], want)
	}
	if last := hops.Counts[len(hops.Bounds)]; last != 1 {
		t.Errorf("hop count 17, above the last bound 16: %d in the last bucket, want 1", last)
	}
	if q := hops.Quantile(0.5); q != 1 {
		t.Errorf("median hop count %v, want 1", q)
	}
	if q := hops.Quantile(1); q != 17 {
		t.Errorf("maximum hop count %v, want 17 (Max, for the last bucket)", q)
	}

	delay := newHistogram(delayBoundsMs()) // 1, 2, 5, 10, ...
	for _, v := range []float64{5, 5.5} {
		delay.observe(v)
	}
	if want := []uint64{0, 0, 1, 1}; !slices.Equal(delay.Counts[:4], want) {
		t.Errorf("delays 5 and 5.5 ms: buckets %v, want %v (5 in the bucket of bound 5, 5.5 in that of 10)", delay.Counts[:4], want)
	}
	if q := delay.Quantile(0.5); q != 5 {
		t.Errorf("median delay %v, want 5", q)
	}
	if q := delay.Quantile(1); q != 5.5 {
		t.Errorf("maximum delay %v, want 5.5 (Max, under its bucket's bound of 10)", q)
	}
}
