package routing

// The table's nearness queries: the entries closest to a key, the neighbours of the node, and the nearest of them
// that has not answered.

import (
	"slices"

	"github.com/actormesh/actormesh/session"
)

// Closest returns the n entries closest to target, closest first (distinct keys leave no ties). It visits the
// buckets in order of distance to target and stops once it has n: with d = LogDistance(self, target), the entries
// of bucket d are closer to target than 2^(d-1), those of buckets 1..d-1 are at distance [2^(d-1), 2^d), and those of
// a bucket j > d at [2^(j-1), 2^j).
func (t *Table) Closest(target Key, n int) []Entry {
	if n <= 0 || t.n == 0 {
		return nil
	}
	c := closest{target: target, out: make([]*slot, 0, min(n, t.n))}
	d := LogDistance(t.selfKey, target)
	if d > 0 {
		c.add(n, t.buckets[d-1:d])
	}
	if len(c.out) < n {
		c.add(n, t.buckets[:max(d-1, 0)])
	}
	for j := d + 1; j <= KeyBits && len(c.out) < n; j++ {
		c.add(n, t.buckets[j-1:j])
	}
	out := make([]Entry, len(c.out))
	for i, s := range c.out {
		out[i] = s.e
	}
	return out
}

// closest collects the entries closest to a target, group by group of buckets, each group farther than the last.
type closest struct {
	target Key
	out    []*slot // closest first
}

// cmp orders slots by distance to the target.
func (c *closest) cmp(a, b *slot) int { return DistCmp(c.target, a.e.Key, b.e.Key) }

// add appends, in order, the entries of the group of buckets bs closest to the target, up to n in out.
func (c *closest) add(n int, bs []*bucket) {
	size := 0
	for _, b := range bs {
		if b != nil {
			size += len(b.entries)
		}
	}
	need, start := n-len(c.out), len(c.out)
	if size <= need { // take them all and sort them
		for _, b := range bs {
			if b != nil {
				for i := range b.entries {
					c.out = append(c.out, &b.entries[i])
				}
			}
		}
		slices.SortFunc(c.out[start:], c.cmp)
		return
	}
	// Keep the need closest in order, by insertion: most entries fail the first comparison.
	for _, b := range bs {
		if b == nil {
			continue
		}
		for i := range b.entries {
			s := &b.entries[i]
			top := c.out[start:]
			if len(top) == need && c.cmp(s, top[need-1]) > 0 {
				continue
			}
			j, _ := slices.BinarySearchFunc(top, s, c.cmp)
			if len(top) == need {
				c.out = c.out[:len(c.out)-1]
			}
			c.out = slices.Insert(c.out, start+j, s)
		}
	}
}

// NearestUnanswered returns, among the node's k closest entries, the nearest one that has not answered the node
// (and that skip, if not nil, does not exclude). A neighbour learned second-hand may not know this node: a node's
// neighbourhood is not symmetric, and one whose early refreshes ended before a neighbour joined near it never
// finds that neighbour by itself; a liveness check of it is also an exchange that introduces this node to it.
func (t *Table) NearestUnanswered(k int, skip func(session.NodeID) bool) (Entry, bool) {
	for _, e := range t.Closest(t.selfKey, k) {
		if !e.Answered() && (skip == nil || !skip(e.ID)) {
			return e, true
		}
	}
	return Entry{}, false
}

// Neighbours reports whether the node id, an entry of the table, and the table's own node are neighbours as far as
// the table knows: id is among the k entries nearest to the table's own key, or the table's own node is among the k
// nodes nearest to id of those the table holds (id's own entry left out). The second half is what
// NearestUnanswered cannot see: a node the table learned second-hand, to which this node is one of the nearest
// while it is not one of this node's, may never hear of this node unless this node introduces itself. It reports
// false for a node not in the table.
func (t *Table) Neighbours(id session.NodeID, k int) bool {
	if k <= 0 {
		return false
	}
	key := KeyOf(id)
	d := LogDistance(t.selfKey, key)
	if d == 0 || t.buckets[d-1] == nil || indexOf(t.buckets[d-1].entries, id) < 0 {
		return false
	}
	// It counts without copying (the introductions ask it of every entry). The entries nearer to the node's own key
	// than id: those of the nearer buckets, and some of id's.
	nearer := 0
	for _, b := range t.buckets[:d-1] {
		if b != nil {
			nearer += len(b.entries)
		}
	}
	for i := range t.buckets[d-1].entries {
		if DistCmp(t.selfKey, t.buckets[d-1].entries[i].e.Key, key) < 0 {
			nearer++
		}
	}
	if nearer < k {
		return true
	}
	// The entries nearer to id than the node are in buckets 1..d: one farther from the node differs from it at a
	// bit above d, where id agrees with the node.
	nearer = 0
	for _, b := range t.buckets[:d] {
		if b == nil {
			continue
		}
		for i := range b.entries {
			if e := &b.entries[i].e; e.ID != id && DistCmp(key, e.Key, t.selfKey) < 0 {
				if nearer++; nearer == k {
					return false
				}
			}
		}
	}
	return true
}
