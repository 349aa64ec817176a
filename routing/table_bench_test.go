package routing

import (
	"fmt"
	"testing"
)

// randomEntries returns n entries with random ids (and their keys) and addresses.
func randomEntries(seed uint64, n int) []Entry {
	rng := newRand(seed)
	out := make([]Entry, n)
	for i := range out {
		id := randID(rng)
		out[i] = Entry{ID: id, Key: KeyOf(id), Addr: randAddr(rng)}
	}
	return out
}

func BenchmarkTableAdd(b *testing.B) {
	entries := randomEntries(20, 1<<16)
	tab, _ := NewTable(randID(newRand(21)), DefaultTableConfig())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tab.Add(entries[i&(len(entries)-1)], t0)
		i++
	}
	b.ReportMetric(float64(tab.Len()), "entries")
}

func BenchmarkClosest(b *testing.B) {
	for _, k := range []int{20, 10000} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			cfg := noLimits()
			cfg.K = k
			tab, _ := NewTable(randID(newRand(22)), cfg)
			for _, e := range randomEntries(23, 10000) {
				tab.Add(e, t0)
			}
			targets := make([]Key, 1024)
			rng := newRand(24)
			for i := range targets {
				targets[i] = randKey(rng)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tab.Closest(targets[i&(len(targets)-1)], 20)
				i++
			}
			b.ReportMetric(float64(tab.Len()), "entries")
		})
	}
}

// BenchmarkNeighbours asks Neighbours of every entry of a table of the default configuration, as an introduction tick
// does; it allocates nothing.
func BenchmarkNeighbours(b *testing.B) {
	tab, _ := NewTable(randID(newRand(25)), noLimits())
	for _, e := range randomEntries(26, 10000) {
		tab.Add(e, t0)
	}
	entries := tab.Entries()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tab.Neighbours(entries[i%len(entries)].ID, 20)
		i++
	}
	b.ReportMetric(float64(len(entries)), "entries")
}
