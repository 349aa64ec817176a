package gossip

import "math"

// Histogram counts observations in fixed buckets. Bounds are the buckets' inclusive upper bounds, ascending; a
// last, implicit bucket holds everything above the last bound. The zero value is not usable: see newHistogram.
type Histogram struct {
	Bounds []float64
	Counts []uint64 // len(Bounds)+1
	Count  uint64
	Sum    float64
	Max    float64
}

// delayBoundsMs returns the bucket bounds of propagation-delay histograms, in milliseconds.
func delayBoundsMs() []float64 {
	return []float64{1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000}
}

// hopBounds returns the bucket bounds of hop-count histograms: one bucket per hop count up to 16.
func hopBounds() []float64 {
	return []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
}

func newHistogram(bounds []float64) Histogram {
	return Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
}

// observe records one value.
func (h *Histogram) observe(v float64) {
	i := 0
	for i < len(h.Bounds) && v > h.Bounds[i] {
		i++
	}
	h.Counts[i]++
	h.Count++
	h.Sum += v
	h.Max = math.Max(h.Max, v)
}

// clone returns a copy that shares nothing with h.
func (h *Histogram) clone() Histogram {
	c := *h
	c.Counts = append([]uint64(nil), h.Counts...)
	return c
}

// Mean is the average observation (0 without any).
func (h Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return h.Sum / float64(h.Count)
}

// Quantile estimates the q-quantile (0 < q <= 1) as the upper bound of the bucket that holds it (Max for the last
// bucket). It is 0 without observations.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.Count)))
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank && c > 0 {
			if i < len(h.Bounds) {
				return math.Min(h.Bounds[i], h.Max)
			}
			return h.Max
		}
	}
	return h.Max
}
