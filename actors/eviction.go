package actors

// Inbound eviction: when every inbound slot is taken, a newcomer that has completed its handshake takes the place of
// the inbound connection the node values least, as Bitcoin Core's AttemptToEvictConnection does. Refusing the
// newcomer instead (what the node did before) let whoever filled the slots first, for instance a sybil spread over
// many IPs right after the node started, hold them for as long as it liked, and no honest node could dial in.
// The rule keeps what an attacker cannot cheaply fake: a few connections from network groups the attacker cannot
// predict, the few peers that most recently relayed gossip of other origins that the node accepted before anyone
// else did (as hard to fake as the application's validators make valid messages: a sybil may relay its other
// identities' publications, as a Bitcoin peer may its own transactions), and the connections that have lasted
// longest. It evicts from the network group that holds the most of
// the rest, so a crowd from one group makes room before a lone peer from another does.
//
// This file is the pure part: chooseEviction decides on plain values and keeps no state.

import (
	"cmp"
	"hash/maphash"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Eviction's protections, Bitcoin Core's figures: protectedGroups connections of distinct network groups, chosen
// by a keyed hash of the group; the protectedRelayers that most recently relayed first (Bitcoin keeps 4 for
// transactions and 4 for blocks); then the longest-connected half of what remains.
const (
	protectedGroups   = 4
	protectedRelayers = 4
)

// evictCandidate is what eviction knows of one inbound connection it may close.
type evictCandidate struct {
	group       netip.Prefix
	connectedAt time.Time
	// lastRelayed is when the peer last was the first to deliver a gossip message the node accepted (zero: never).
	lastRelayed time.Time
}

// netGroup returns the network group of ip: its /16 for IPv4, its /32 for IPv6 (Bitcoin Core's groups: one
// operator rarely holds addresses in many of them). The zero Prefix for an invalid ip.
func netGroup(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.WithZone("").Unmap()
	bits := 32
	if ip.Is4() {
		bits = 16
	}
	p, _ := ip.Prefix(bits) // cannot fail: ip is valid, has no zone and bits fits its length
	return p
}

// groupRank orders network groups by a hash keyed with a seed of the node's own, so that which groups eviction
// protects cannot be predicted from outside.
func groupRank(seed maphash.Seed, g netip.Prefix) uint64 {
	return maphash.Comparable(seed, g)
}

// chooseEviction returns the index in c of the connection to close to make room for a newcomer, or -1 if every
// candidate is protected. It protects, in order: one connection from each of the protectedGroups groups of the
// smallest keyed rank (the oldest of each), the protectedRelayers of the others that relayed most recently (never
// one that did not), then the longest-connected half of the others. Of the rest it closes
// the youngest connection of the group that holds the most of them (ties: the group whose youngest is youngest).
func chooseEviction(c []evictCandidate, seed maphash.Seed) int {
	idx := make([]int, len(c))
	for i := range idx {
		idx[i] = i
	}
	// The oldest connection of each group, then the groups by rank: the first protectedGroups are kept.
	oldest := make(map[netip.Prefix]int)
	for _, i := range idx {
		if j, ok := oldest[c[i].group]; !ok || c[i].connectedAt.Before(c[j].connectedAt) {
			oldest[c[i].group] = i
		}
	}
	heads := slices.SortedFunc(maps.Values(oldest), func(a, b int) int {
		return cmp.Compare(groupRank(seed, c[a].group), groupRank(seed, c[b].group))
	})
	protected := make(map[int]bool, protectedGroups)
	for _, i := range heads[:min(protectedGroups, len(heads))] {
		protected[i] = true
	}
	rest := slices.DeleteFunc(idx, func(i int) bool { return protected[i] })
	// The peers that relayed most recently are kept: a peer that serves the node is what an eclipse must displace,
	// and only beating it at delivering valid messages first does.
	slices.SortStableFunc(rest, func(a, b int) int { return c[b].lastRelayed.Compare(c[a].lastRelayed) })
	relayers := 0
	for relayers < min(protectedRelayers, len(rest)) && !c[rest[relayers]].lastRelayed.IsZero() {
		relayers++
	}
	rest = rest[relayers:]
	// The longest-connected half of the rest is kept.
	slices.SortStableFunc(rest, func(a, b int) int { return c[a].connectedAt.Compare(c[b].connectedAt) })
	rest = rest[len(rest)/2:]
	if len(rest) == 0 {
		return -1
	}
	// The group holding the most of what is left gives up its youngest connection.
	count := make(map[netip.Prefix]int)
	youngest := make(map[netip.Prefix]int)
	for _, i := range rest {
		g := c[i].group
		count[g]++
		if j, ok := youngest[g]; !ok || !c[i].connectedAt.Before(c[j].connectedAt) {
			youngest[g] = i
		}
	}
	// Ties: the group whose youngest is youngest, then the later candidate, so that the choice does not depend on
	// map order.
	return slices.MaxFunc(slices.Collect(maps.Values(youngest)), func(a, b int) int {
		return cmp.Or(cmp.Compare(count[c[a].group], count[c[b].group]),
			c[a].connectedAt.Compare(c[b].connectedAt), cmp.Compare(a, b))
	})
}
