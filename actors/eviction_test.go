package actors

import (
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func TestNetGroup(t *testing.T) {
	cases := []struct{ ip, want string }{
		{"203.0.113.7", "203.0.0.0/16"},
		{"203.0.200.1", "203.0.0.0/16"},
		{"::ffff:198.51.100.9", "198.51.0.0/16"},
		{"2001:db8:1:2::5", "2001:db8::/32"},
		{"fe80::1%eth0", "fe80::/32"},
	}
	for _, c := range cases {
		if got := netGroup(netip.MustParseAddr(c.ip)); got.String() != c.want {
			t.Errorf("netGroup(%s) = %s, want %s", c.ip, got, c.want)
		}
	}
	if g := netGroup(netip.Addr{}); g.IsValid() {
		t.Errorf("netGroup of the zero Addr = %s, want the zero Prefix", g)
	}
}

// candidates builds one candidate per group name given, connected one second apart in that order (the first is
// the oldest).
func candidates(groups ...string) []evictCandidate {
	t0 := time.Unix(1_700_000_000, 0)
	c := make([]evictCandidate, len(groups))
	for i, g := range groups {
		c[i] = evictCandidate{group: netip.MustParsePrefix(g), connectedAt: t0.Add(time.Duration(i) * time.Second)}
	}
	return c
}

// randomCandidates builds 5 to 64 candidates from 6 network groups at random, connected one second apart.
func randomCandidates(rng *rand.Rand) []evictCandidate {
	groups := make([]string, 5+rng.IntN(60))
	for i := range groups {
		groups[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(rng.IntN(6)), 0, 0}), 16).String()
	}
	return candidates(groups...)
}

func TestChooseEvictionTakesTheYoungestOfTheLargestGroup(t *testing.T) {
	// Two honest peers from groups of their own, connected first, and a crowd of 8 from one /16 after them. The
	// crowd's youngest goes, whatever the seed.
	groups := []string{"198.51.0.0/16", "192.0.0.0/16"}
	for range 8 {
		groups = append(groups, "203.0.0.0/16")
	}
	c := candidates(groups...)
	for range 50 {
		if got := chooseEviction(c, maphash.MakeSeed()); got != len(c)-1 {
			t.Fatalf("evicted candidate %d (%s), want the crowd's youngest (%d)", got, c[got].group, len(c)-1)
		}
	}
}

func TestChooseEvictionProtectsSomeGroupsAndTheOldestHalf(t *testing.T) {
	// Nothing to evict when every candidate is protected: up to 4 groups, one connection each.
	for n := range 5 {
		groups := []string{"10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16"}[:n]
		if got := chooseEviction(candidates(groups...), maphash.MakeSeed()); got != -1 {
			t.Errorf("%d candidates of distinct groups: evicted %d, want none", n, got)
		}
	}
	// Of 5 distinct groups, 4 are protected by rank; the fifth is the half that is left (one of one).
	c := candidates("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16", "10.5.0.0/16")
	seed := maphash.MakeSeed()
	got := chooseEviction(c, seed)
	if got < 0 {
		t.Fatal("5 candidates of distinct groups: nothing evicted")
	}
	for i := range c {
		if i != got && groupRank(seed, c[i].group) > groupRank(seed, c[got].group) {
			t.Errorf("evicted %s, ranked before %s, which should have gone first", c[got].group, c[i].group)
		}
	}
}

// An attacker that fills the slots from many groups after honest peers connected cannot get an honest peer
// evicted while its own younger connections remain: the honest peers are the longest-connected half, or among the
// protected groups.
func TestChooseEvictionNeverTakesTheOldHalfFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		c := randomCandidates(rng)
		n := len(c)
		got := chooseEviction(c, maphash.MakeSeed())
		if got < 0 {
			t.Fatalf("trial %d: %d candidates, nothing evicted", trial, n)
		}
		// At most protectedGroups candidates are protected by rank, so the victim is never among the oldest
		// (n - protectedGroups) / 2.
		if got < (n-protectedGroups)/2 {
			t.Fatalf("trial %d: evicted candidate %d of %d, one of the oldest half", trial, got, n)
		}
		// It is the youngest of its group.
		for i := got + 1; i < n; i++ {
			if c[i].group == c[got].group {
				t.Fatalf("trial %d: evicted %d of %s, but %d of the same group is younger", trial, got, c[got].group, i)
			}
		}
	}
}

func TestChooseEvictionKeepsTheRecentRelayers(t *testing.T) {
	// A crowd of 8 from one /16; its youngest relayed gossip first: it stays, the next youngest goes.
	groups := make([]string, 8)
	for i := range groups {
		groups[i] = "203.0.0.0/16"
	}
	c := candidates(groups...)
	now := c[7].connectedAt.Add(time.Minute)
	c[7].lastRelayed = now
	if got := chooseEviction(c, maphash.MakeSeed()); got != 6 {
		t.Fatalf("evicted candidate %d, want 6: the youngest relayed and is kept", got)
	}
	// Only the protectedRelayers most recent relayers are kept: with the 6 youngest relaying, candidate 7 the
	// longest ago, it goes.
	for i := 2; i < 8; i++ {
		c[i].lastRelayed = now.Add(-time.Duration(i) * time.Second)
	}
	if got := chooseEviction(c, maphash.MakeSeed()); got != 7 {
		t.Fatalf("evicted candidate %d, want 7: of the 6 relayers it relayed longest ago", got)
	}
}

// Whatever the groups and ages, a victim that relayed is never one of the protectedRelayers most recent relayers.
func TestChooseEvictionNeverTakesARecentRelayer(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		c := randomCandidates(rng)
		n := len(c)
		t0 := c[n-1].connectedAt
		for i, p := range rng.Perm(n) {
			if rng.IntN(3) == 0 {
				c[i].lastRelayed = t0.Add(time.Duration(p+1) * time.Millisecond) // distinct times
			}
		}
		got := chooseEviction(c, maphash.MakeSeed())
		if got < 0 {
			if n > protectedGroups+protectedRelayers {
				t.Fatalf("trial %d: %d candidates, nothing evicted", trial, n)
			}
			continue // every one protected, by its group or as a relayer
		}
		if c[got].lastRelayed.IsZero() {
			continue
		}
		later := 0
		for i := range c {
			if c[i].lastRelayed.After(c[got].lastRelayed) {
				later++
			}
		}
		if later < protectedRelayers {
			t.Fatalf("trial %d: evicted a relayer with only %d relaying more recently, want at least %d", trial, later, protectedRelayers)
		}
	}
}

// chooseEviction's doc: after the group heads and the relayers, "the longest-connected half of the others" is
// protected. Old group B (4 connections) and young group A (3): the heads B0 and A0 are protected, then the older
// half of the rest (B1, B2); of B3, A1, A2 group A holds the most and gives up its youngest, A2. Without the
// longest-connected half, B (B1..B3) outnumbers A and its old connection B3 is closed.
func TestChooseEvictionKeepsTheLongestConnectedHalf(t *testing.T) {
	base := time.Unix(1_000_000, 0)
	a, b := netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.2.0.0/16")
	var c []evictCandidate
	for i := range 4 {
		c = append(c, evictCandidate{group: b, connectedAt: base.Add(time.Duration(i) * time.Minute)})
	}
	for i := range 3 {
		c = append(c, evictCandidate{group: a, connectedAt: base.Add(time.Hour + time.Duration(i)*time.Minute)})
	}
	for range 20 { // any seed: with two groups both heads are protected
		if got := chooseEviction(c, maphash.MakeSeed()); got != 6 {
			t.Fatalf("evicted candidate %d (connected %v), want 6, the youngest of group A", got, c[got].connectedAt.Sub(base))
		}
	}
}
