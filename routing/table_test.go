package routing

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

func TestDistanceProperties(t *testing.T) {
	rng := newRand(1)
	bigOf := func(k Key) *big.Int { return new(big.Int).SetBytes(k[:]) }
	for range 5000 {
		a, b, c := randKey(rng), randKey(rng), randKey(rng)
		if Distance(a, a) != (Key{}) || LogDistance(a, a) != 0 {
			t.Fatalf("distance of %v to itself is not zero", a)
		}
		if Distance(a, b) != Distance(b, a) || LogDistance(a, b) != LogDistance(b, a) {
			t.Fatalf("distance is not symmetric for %v, %v", a, b)
		}
		if got, want := LogDistance(a, b), bigOf(Distance(a, b)).BitLen(); got != want {
			t.Fatalf("LogDistance = %d, bit length of XOR = %d", got, want)
		}
		if Distance(a, c) != Distance(Distance(a, b), Distance(b, c)) {
			t.Fatalf("d(a,c) != d(a,b) xor d(b,c)")
		}
		if LogDistance(a, c) > max(LogDistance(a, b), LogDistance(b, c)) {
			t.Fatalf("LogDistance is not ultrametric")
		}
		if got, want := DistCmp(c, a, b), bigOf(Distance(a, c)).Cmp(bigOf(Distance(b, c))); got != want {
			t.Fatalf("DistCmp = %d, big.Int comparison = %d", got, want)
		}
	}
	var z, first, last Key
	first[0], last[31] = 0x80, 1
	if LogDistance(z, first) != 256 || LogDistance(z, last) != 1 {
		t.Fatalf("LogDistance edges: %d, %d", LogDistance(z, first), LogDistance(z, last))
	}
	if s := last.String(); len(s) != 64 || s[62:] != "01" {
		t.Fatalf("Key.String = %q", s)
	}
	if _, err := KeyFromBytes(make([]byte, 31)); !errors.Is(err, ErrBadKey) {
		t.Fatalf("KeyFromBytes(31 bytes) error = %v, want ErrBadKey", err)
	}
	if k, err := KeyFromBytes(last[:]); err != nil || k != last {
		t.Fatalf("KeyFromBytes = %v, %v", k, err)
	}
}

func TestRandomKeyAtDistance(t *testing.T) {
	rng := newRand(2)
	tab, err := NewTable(randID(rng), DefaultTableConfig())
	if err != nil {
		t.Fatal(err)
	}
	for d := 0; d <= KeyBits; d++ {
		for range 20 {
			if got := LogDistance(tab.SelfKey(), tab.RandomKeyAtDistance(rng, d)); got != d {
				t.Fatalf("RandomKeyAtDistance(%d) is at log distance %d", d, got)
			}
		}
	}
	if LogDistance(tab.SelfKey(), tab.RandomKeyAtDistance(rng, 1000)) != KeyBits {
		t.Fatal("d above 256 is not clamped")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultTableConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*TableConfig){
		func(c *TableConfig) { c.K = 0 },
		func(c *TableConfig) { c.Replacements = -1 },
		func(c *TableConfig) { c.BucketIPLimit = -1 },
		func(c *TableConfig) { c.TableIPLimit = -1 },
		func(c *TableConfig) { c.MaxFailures = 0 },
	} {
		c := DefaultTableConfig()
		mod(&c)
		if _, err := NewTable(session.NodeID{1}, c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("NewTable(%+v) error = %v, want ErrInvalidConfig", c, err)
		}
	}
}

func TestStalestIsTheLeastRecentlySeenNotSkipped(t *testing.T) {
	rng := newRand(9)
	tab, err := NewTable(randID(rng), noLimits())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tab.Stalest(nil); ok {
		t.Fatal("Stalest of an empty table found an entry")
	}
	for i := range 200 {
		tab.Add(Entry{ID: randID(rng), Addr: randAddr(rng)}, t0.Add(time.Duration(rng.IntN(1000))*time.Second+time.Duration(i)))
	}
	// The oracle: the entries sorted by LastSeen.
	all := tab.Entries()
	slices.SortFunc(all, func(a, b Entry) int { return a.LastSeen.Compare(b.LastSeen) })
	if e, ok := tab.Stalest(nil); !ok || e.ID != all[0].ID {
		t.Fatalf("Stalest = %s, want %s", e.ID.Short(), all[0].ID.Short())
	}
	skipped := map[session.NodeID]bool{all[0].ID: true, all[1].ID: true}
	if e, ok := tab.Stalest(func(id session.NodeID) bool { return skipped[id] }); !ok || e.ID != all[2].ID {
		t.Fatalf("Stalest skipping the two stalest = %s, want %s", e.ID.Short(), all[2].ID.Short())
	}
	tab.MarkAlive(all[0].ID, t0.Add(time.Hour))
	if e, _ := tab.Stalest(nil); e.ID != all[1].ID {
		t.Fatalf("after the stalest was seen alive: %s, want %s", e.ID.Short(), all[1].ID.Short())
	}
	if _, ok := tab.Stalest(func(session.NodeID) bool { return true }); ok {
		t.Fatal("Stalest found an entry when every one is skipped")
	}
}

// TestStalestOfSplitsTheEntriesThatAnswered: an entry that answered (MarkAlive) is Answered until it fails a check;
// StalestOf picks the least recently seen of one kind; a node mentioned again keeps its answer, a new one has none.
func TestStalestOfSplitsTheEntriesThatAnswered(t *testing.T) {
	rng := newRand(10)
	tab, err := NewTable(randID(rng), noLimits())
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]session.NodeID, 4)
	for i := range ids {
		ids[i] = randID(rng)
		tab.Add(Entry{ID: ids[i], Addr: randAddr(rng), AnsweredAt: t0}, t0.Add(time.Duration(i)*time.Second))
	}
	if _, ok := tab.StalestOf(true, nil); ok {
		t.Fatal("a new entry counts as answered (Add must not take the caller's AnsweredAt)")
	}
	// ids[1] and ids[2] answer; ids[0] stays the stalest of all.
	tab.MarkAlive(ids[2], t0.Add(10*time.Second))
	tab.MarkAlive(ids[1], t0.Add(11*time.Second))
	check := func(answered bool, want session.NodeID, why string) {
		t.Helper()
		if e, ok := tab.StalestOf(answered, nil); !ok || e.ID != want {
			t.Fatalf("%s: StalestOf(%v) = %s (%v), want %s", why, answered, e.ID.Short(), ok, want.Short())
		}
	}
	check(true, ids[2], "two answered")
	check(false, ids[0], "two answered")
	if e, _ := tab.Stalest(nil); e.ID != ids[0] {
		t.Fatalf("Stalest = %s, want %s (of every kind)", e.ID.Short(), ids[0].Short())
	}
	if e, ok := tab.StalestOf(true, func(id session.NodeID) bool { return id == ids[2] }); !ok || e.ID != ids[1] {
		t.Fatalf("StalestOf(true) skipping %s = %s", ids[2].Short(), e.ID.Short())
	}
	// Mentioned again by another node, ids[2] keeps its answer and stays the stalest: a mention is no sign of life.
	tab.Add(Entry{ID: ids[2], Addr: randAddr(rng)}, t0.Add(20*time.Second))
	check(true, ids[2], "ids[2] mentioned again")
	if e, _ := tab.Get(ids[2]); !e.Answered() || !e.AnsweredAt.Equal(t0.Add(10*time.Second)) || !e.LastSeen.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("ids[2] after Add: answered %v at %v, last seen %v", e.Answered(), e.AnsweredAt, e.LastSeen)
	}
	tab.MarkAlive(ids[2], t0.Add(20*time.Second)) // it answers: now the freshest
	check(true, ids[1], "ids[2] answered again")
	// A failed check makes ids[1] one to check at the faster rate again.
	tab.MarkFailed(ids[1], t0.Add(30*time.Second), t0.Add(30*time.Second))
	check(true, ids[2], "ids[1] failed a check")
	if e, _ := tab.Get(ids[1]); e.Answered() {
		t.Fatal("ids[1] still answered after a failed check")
	}
	if _, ok := tab.StalestOf(false, func(id session.NodeID) bool { return id != ids[1] }); !ok {
		t.Fatal("ids[1] not among the unanswered after its failed check")
	}
}

func TestAddStatuses(t *testing.T) {
	rng := newRand(3)
	self := randID(rng)
	tab, _ := NewTable(self, DefaultTableConfig())
	if r := tab.Add(Entry{ID: self, Addr: "1.2.3.4:5"}, t0); r.Status != RejectedSelf {
		t.Fatalf("adding self: %v", r.Status)
	}
	for _, addr := range []string{"", "1.2.3.4", ":80", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:x", "a b:1", "[x]:1",
		"0.0.0.0:4000", "224.0.0.1:4000", "255.255.255.255:4000", "[::]:4000", "[ff02::1]:4000"} { // VerifyRecord refuses the last five too
		if r := tab.Add(Entry{ID: randID(rng), Addr: addr}, t0); r.Status != RejectedAddr {
			t.Fatalf("adding addr %q: %v", addr, r.Status)
		}
	}
	id := randID(rng)
	if r := tab.Add(Entry{ID: id, Addr: "1.2.3.4:5"}, t0); r.Status != Added {
		t.Fatalf("first add: %v", r.Status)
	}
	if r := tab.Add(Entry{ID: id, Addr: "5.6.7.8:9"}, t0.Add(time.Second)); r.Status != Updated {
		t.Fatalf("second add: %v", r.Status)
	}
	e, ok := tab.Get(id)
	if !ok || e.Addr != "5.6.7.8:9" || !e.AddedAt.Equal(t0) || !e.LastSeen.Equal(t0) || e.Key != KeyOf(id) {
		t.Fatalf("Get = %+v, %v", e, ok)
	}
	if tab.Len() != 1 || Added.String() != "added" || AddStatus(0).String() != "AddStatus(0)" {
		t.Fatal("Len or String")
	}
}

// fillBucket adds ids to tab, each in its own /24, one second apart from t0, and expects each to be Added.
func fillBucket(t *testing.T, tab *Table, ids []session.NodeID) {
	t.Helper()
	for i, id := range ids {
		addr := fmt.Sprintf("10.%d.%d.1:4000", i/256, i%256)
		if r := tab.Add(Entry{ID: id, Addr: addr}, t0.Add(time.Duration(i)*time.Second)); r.Status != Added {
			t.Fatalf("add %d: %v", i, r.Status)
		}
	}
}

func TestBucketFullEvictionAfterFailedCheck(t *testing.T) {
	rng := newRand(4)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest = false // the classic bucket: newcomers wait for a failed check
	cfg.K, cfg.Replacements = 4, 2
	cfg.FailureSpacing = 0 // failed checks in one instant count: the spacing has tests of its own
	tab, _ := NewTable(self, cfg)
	var bucketIDs []session.NodeID
	for range 8 {
		bucketIDs = append(bucketIDs, idInBucket(rng, self, 256))
	}
	fillBucket(t, tab, bucketIDs[:4])
	now := t0.Add(time.Hour)

	// Full bucket: the newcomer waits, the least recently seen entry is named for a check.
	r := tab.Add(Entry{ID: bucketIDs[4], Addr: "20.0.0.1:1"}, now)
	if r.Status != Pending || r.Check == nil || r.Check.ID != bucketIDs[0] {
		t.Fatalf("add to full bucket: %+v", r)
	}
	if tab.Len() != 4 || tab.ReplacementLens()[255] != 1 {
		t.Fatalf("Len = %d, replacements = %d", tab.Len(), tab.ReplacementLens()[255])
	}
	// The check succeeds: nothing is dropped, the checked entry becomes most recently seen.
	if !tab.MarkAlive(bucketIDs[0], now) {
		t.Fatal("MarkAlive of a present entry returned false")
	}
	if got := ids(tab.Entries()); !slices.Equal(got, []session.NodeID{bucketIDs[1], bucketIDs[2], bucketIDs[3], bucketIDs[0]}) {
		t.Fatal("MarkAlive did not move the entry to most recently seen")
	}
	r = tab.Add(Entry{ID: bucketIDs[5], Addr: "20.0.1.1:1"}, now)
	if r.Status != Pending || r.Check.ID != bucketIDs[1] {
		t.Fatalf("second pending add: %+v", r)
	}
	// The cache keeps the 2 most recent newcomers.
	tab.Add(Entry{ID: bucketIDs[6], Addr: "20.0.2.1:1"}, now)
	if tab.ReplacementLens()[255] != 2 {
		t.Fatalf("replacement cache holds %d, want 2", tab.ReplacementLens()[255])
	}
	// The check fails MaxFailures times: the entry goes and the most recent replacement takes its place.
	if tab.MarkFailed(bucketIDs[1], now, now) {
		t.Fatal("removed after one failure")
	}
	if e, _ := tab.Get(bucketIDs[1]); e.Failures != 1 {
		t.Fatalf("Failures = %d", e.Failures)
	}
	if !tab.MarkFailed(bucketIDs[1], now.Add(time.Second), now.Add(time.Second)) {
		t.Fatal("not removed after MaxFailures failures")
	}
	if _, ok := tab.Get(bucketIDs[1]); ok {
		t.Fatal("failed entry still present")
	}
	e, ok := tab.Get(bucketIDs[6])
	if !ok || !e.AddedAt.Equal(now.Add(time.Second)) || tab.Len() != 4 {
		t.Fatalf("replacement not promoted: %+v %v, Len %d", e, ok, tab.Len())
	}
	if _, ok := tab.Get(bucketIDs[5]); ok || tab.ReplacementLens()[255] != 1 {
		t.Fatal("older replacement should still wait")
	}
	// MarkAlive resets failures.
	tab.MarkFailed(bucketIDs[2], now, now)
	tab.MarkAlive(bucketIDs[2], now)
	if tab.MarkFailed(bucketIDs[2], now, now) {
		t.Fatal("failures not reset by MarkAlive")
	}
	// A replacement that fails is dropped from the cache by the entries' rule, at its MaxFailures-th failure in a
	// row (until stop 58 at its first); unknown ids are no-ops.
	if tab.MarkFailed(bucketIDs[5], now, now) || tab.ReplacementLens()[255] != 1 {
		t.Fatal("a replacement dropped after one failure")
	}
	if !tab.MarkFailed(bucketIDs[5], now, now) || tab.ReplacementLens()[255] != 0 {
		t.Fatal("failed replacement not dropped after MaxFailures failures")
	}
	if tab.MarkFailed(randID(rng), now, now) || tab.MarkAlive(randID(rng), now) || tab.Remove(randID(rng)) {
		t.Fatal("unknown id reported as present")
	}
	// With an empty cache, a removal leaves room for the next Add.
	tab.MarkFailed(bucketIDs[3], now, now)
	if !tab.MarkFailed(bucketIDs[3], now, now) || tab.Len() != 3 {
		t.Fatalf("Len = %d after removal with empty cache", tab.Len())
	}
	if r := tab.Add(Entry{ID: bucketIDs[7], Addr: "20.0.3.1:1"}, now); r.Status != Added {
		t.Fatalf("add after removal: %v", r.Status)
	}
	if !tab.Remove(bucketIDs[7]) || tab.Len() != 3 {
		t.Fatal("Remove")
	}
}

func TestPromotionRespectsIPLimits(t *testing.T) {
	rng := newRand(5)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest = false // the classic bucket: newcomers wait for a failed check
	cfg.K, cfg.BucketIPLimit = 3, 1
	cfg.FailureSpacing = 0 // failed checks in one instant count: the spacing has tests of its own
	tab, _ := NewTable(self, cfg)
	b := make([]session.NodeID, 6)
	for i := range b {
		b[i] = idInBucket(rng, self, 255)
	}
	tab.Add(Entry{ID: b[0], Addr: "30.0.0.1:1"}, t0)
	tab.Add(Entry{ID: b[1], Addr: "30.0.1.1:1"}, t0)
	tab.Add(Entry{ID: b[2], Addr: "30.0.2.1:1"}, t0)
	tab.Add(Entry{ID: b[3], Addr: "30.0.3.1:1"}, t0) // pending, own /24
	if r := tab.Add(Entry{ID: b[4], Addr: "30.0.1.2:1"}, t0); r.Status != RejectedIP {
		t.Fatalf("same /24 as a bucket entry: %v", r.Status) // b[1]'s /24 is at its limit in the bucket
	}
	tab.MarkFailed(b[0], t0, t0)
	tab.MarkFailed(b[0], t0, t0)
	if _, ok := tab.Get(b[3]); !ok {
		t.Fatal("replacement not promoted")
	}
	// A cached replacement whose /24 has since filled up is skipped.
	tab.Add(Entry{ID: b[5], Addr: "30.0.9.1:1"}, t0) // pending
	tab.Add(Entry{ID: b[1], Addr: "30.0.9.2:1"}, t0) // b[1] moves into b[5]'s /24
	tab.MarkFailed(b[2], t0, t0)
	tab.MarkFailed(b[2], t0, t0)
	if _, ok := tab.Get(b[5]); ok || tab.Len() != 2 {
		t.Fatalf("promoted a replacement over the IP limit (Len %d)", tab.Len())
	}
}

func TestIPDiversityLimits(t *testing.T) {
	countPerBucket := func(tab *Table) int { return slices.Max(tab.BucketLens()) }
	addMany := func(tab *Table, n int, addr func(i int) string) {
		r := newRand(99)
		for i := range n {
			tab.Add(Entry{ID: randID(r), Addr: addr(i)}, t0)
		}
	}
	t.Run("ipv4 /24", func(t *testing.T) {
		tab, _ := NewTable(randID(newRand(6)), DefaultTableConfig())
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("40.1.2.%d:%d", i%256, 1000+i) })
		if tab.Len() != 10 || countPerBucket(tab) != 2 {
			t.Fatalf("one /24: %d in table, max %d per bucket; want 10 and 2", tab.Len(), countPerBucket(tab))
		}
		// Other /24s are unaffected; an IPv4-mapped IPv6 address counts in the IPv4 /24.
		if r := tab.Add(Entry{ID: randID(newRand(7)), Addr: "40.1.3.1:1"}, t0); r.Status != Added {
			t.Fatalf("other /24: %v", r.Status)
		}
		if r := tab.Add(Entry{ID: randID(newRand(8)), Addr: "[::ffff:40.1.2.200]:1"}, t0); r.Status != RejectedIP {
			t.Fatalf("mapped address: %v", r.Status)
		}
	})
	t.Run("ipv6 /64", func(t *testing.T) {
		tab, _ := NewTable(randID(newRand(9)), DefaultTableConfig())
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("[2001:db8:1:2::%x]:%d", i, 1000+i) })
		if tab.Len() != 10 || countPerBucket(tab) != 2 {
			t.Fatalf("one /64: %d in table, max %d per bucket", tab.Len(), countPerBucket(tab))
		}
	})
	t.Run("host names", func(t *testing.T) {
		tab, _ := NewTable(randID(newRand(10)), DefaultTableConfig())
		addMany(tab, 100, func(i int) string { return fmt.Sprintf("Node.Example:%d", 1000+i) })
		addMany(tab, 100, func(i int) string { return fmt.Sprintf("node.example:%d", 2000+i) })
		if tab.Len() != 10 {
			t.Fatalf("one host name: %d in table", tab.Len())
		}
		addMany(tab, 100, func(i int) string { return fmt.Sprintf("n%d.example:1", i) })
		if tab.Len() < 50 {
			t.Fatalf("distinct domains limited: %d in table", tab.Len())
		}
		// One machine under many names of one domain (wildcard DNS) is one group: the names used to be one each.
		tab, _ = NewTable(randID(newRand(12)), DefaultTableConfig())
		addMany(tab, 100, func(i int) string { return fmt.Sprintf("n%d.203.0.113.7.NIP.io.:4001", i) })
		if tab.Len() != 10 || countPerBucket(tab) != 2 {
			t.Fatalf("one domain: %d in table, max %d per bucket", tab.Len(), countPerBucket(tab))
		}
	})
	t.Run("loopback", func(t *testing.T) {
		tab, _ := NewTable(randID(newRand(11)), DefaultTableConfig())
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("127.0.0.1:%d", 1000+i) })
		if tab.Len() != 10 {
			t.Fatalf("loopback without exemption: %d in table", tab.Len())
		}
		cfg := DefaultTableConfig()
		cfg.ExemptLoopback = true
		tab, _ = NewTable(randID(newRand(11)), cfg)
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("127.0.0.1:%d", 1000+i) })
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("[::1]:%d", 1000+i) })
		if tab.Len() <= 10 || countPerBucket(tab) != cfg.K {
			t.Fatalf("loopback with exemption: %d in table, max %d per bucket", tab.Len(), countPerBucket(tab))
		}
	})
	// A fleet on one private network shares a /24: ExemptPrivate (set by a node whose own address is private) lets
	// its nodes fill the table; public groups keep their limits.
	t.Run("private", func(t *testing.T) {
		tab, _ := NewTable(randID(newRand(14)), DefaultTableConfig())
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("10.0.0.%d:%d", i%256, 1000+i) })
		if tab.Len() != 10 {
			t.Fatalf("a private /24 without exemption: %d in table", tab.Len())
		}
		cfg := DefaultTableConfig()
		cfg.ExemptPrivate = true
		for _, addr := range []func(i int) string{
			func(i int) string { return fmt.Sprintf("10.0.0.%d:%d", i%256, 1000+i) },
			func(i int) string { return fmt.Sprintf("172.17.0.%d:%d", i%256, 1000+i) },
			func(i int) string { return fmt.Sprintf("100.64.0.%d:%d", i%256, 1000+i) },
			func(i int) string { return fmt.Sprintf("[fd00::%x]:%d", i, 1000+i) },
		} {
			tab, _ = NewTable(randID(newRand(14)), cfg)
			addMany(tab, 300, addr)
			if tab.Len() <= 10 || countPerBucket(tab) != cfg.K {
				t.Fatalf("%s with exemption: %d in table, max %d per bucket", addr(0), tab.Len(), countPerBucket(tab))
			}
		}
		tab, _ = NewTable(randID(newRand(15)), cfg)
		addMany(tab, 300, func(i int) string { return fmt.Sprintf("40.1.2.%d:%d", i%256, 1000+i) })
		if tab.Len() != 10 {
			t.Fatalf("a public /24 with ExemptPrivate: %d in table, want 10", tab.Len())
		}
	})
	t.Run("address change", func(t *testing.T) {
		rng := newRand(12)
		self := randID(rng)
		tab, _ := NewTable(self, DefaultTableConfig())
		a, b, c := idInBucket(rng, self, 256), idInBucket(rng, self, 256), idInBucket(rng, self, 256)
		tab.Add(Entry{ID: a, Addr: "50.0.0.1:1"}, t0)
		tab.Add(Entry{ID: b, Addr: "50.0.0.2:1"}, t0)
		tab.Add(Entry{ID: c, Addr: "60.0.0.1:1"}, t0)
		if r := tab.Add(Entry{ID: c, Addr: "50.0.0.3:1"}, t0); r.Status != RejectedIP {
			t.Fatalf("moving into a full /24: %v", r.Status)
		}
		if e, _ := tab.Get(c); e.Addr != "60.0.0.1:1" {
			t.Fatalf("rejected update changed the address to %s", e.Addr)
		}
		if r := tab.Add(Entry{ID: a, Addr: "70.0.0.1:1"}, t0); r.Status != Updated {
			t.Fatalf("moving out: %v", r.Status)
		}
		if r := tab.Add(Entry{ID: c, Addr: "50.0.0.3:1"}, t0); r.Status != Updated {
			t.Fatalf("moving into a /24 with room: %v", r.Status)
		}
	})
	t.Run("replacement cache", func(t *testing.T) {
		rng := newRand(13)
		self := randID(rng)
		cfg := DefaultTableConfig()
		cfg.KeepNearest = false // the classic bucket: newcomers wait for a failed check
		cfg.K = 2
		tab, _ := NewTable(self, cfg)
		tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: "80.0.0.1:1"}, t0)
		tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: "80.0.1.1:1"}, t0)
		for i := range 20 {
			tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: fmt.Sprintf("90.0.0.%d:1", i+1)}, t0)
		}
		if got := tab.ReplacementLens()[255]; got != 2 {
			t.Fatalf("replacement cache holds %d of one /24, want 2", got)
		}
	})
}

// A node waiting in a replacement cache that is learned again while its IP group has no room left in the table
// (others of its /24 joined meanwhile) is refused as before, but keeps its place in the cache.
func TestARefusedReAddKeepsTheReplacement(t *testing.T) {
	rng := newRand(15)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.KeepNearest, cfg.K, cfg.TableIPLimit = false, 2, 2
	tab, _ := NewTable(self, cfg)
	tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: "80.0.0.1:1"}, t0)
	tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: "80.0.1.1:1"}, t0)
	x := idInBucket(rng, self, 256)
	if r := tab.Add(Entry{ID: x, Addr: "95.0.0.1:1"}, t0); r.Status != Pending {
		t.Fatalf("newcomer for a full bucket: %v, want Pending", r.Status)
	}
	tab.Add(Entry{ID: idInBucket(rng, self, 255), Addr: "95.0.0.2:1"}, t0)
	tab.Add(Entry{ID: idInBucket(rng, self, 255), Addr: "95.0.0.3:1"}, t0)
	if r := tab.Add(Entry{ID: x, Addr: "95.0.0.1:1"}, t0); r.Status != RejectedIP {
		t.Fatalf("re-add with its /24 full in the table: %v, want RejectedIP", r.Status)
	}
	if got := tab.ReplacementLens()[255]; got != 1 {
		t.Fatalf("replacement cache holds %d, want the waiting node still there", got)
	}
}

func TestRefreshTargets(t *testing.T) {
	rng := newRand(14)
	tab, _ := NewTable(randID(rng), noLimits())
	for range 2000 {
		tab.Add(Entry{ID: randID(rng), Addr: randAddr(rng)}, t0)
	}
	if empty, _ := NewTable(randID(rng), noLimits()); empty.RefreshTargets(rng, t0, time.Hour) != nil {
		t.Fatal("empty table: refresh targets")
	}
	first := slices.IndexFunc(tab.BucketLens(), func(n int) bool { return n > 0 }) + 1
	keys := tab.RefreshTargets(rng, t0, time.Hour)
	if len(keys) != KeyBits-first+1 {
		t.Fatalf("%d targets, want %d (buckets %d..256)", len(keys), KeyBits-first+1, first)
	}
	for i, k := range keys {
		if d := LogDistance(tab.SelfKey(), k); d != first+i {
			t.Fatalf("target %d at log distance %d, want %d", i, d, first+i)
		}
	}
	if got := tab.RefreshTargets(rng, t0.Add(time.Minute), time.Hour); len(got) != 0 {
		t.Fatalf("refreshed again after a minute: %d targets", len(got))
	}
	tab.Touched(tab.RandomKeyAtDistance(rng, 256), t0.Add(30*time.Minute))
	tab.Touched(tab.SelfKey(), t0.Add(30*time.Minute)) // no-op
	got := tab.RefreshTargets(rng, t0.Add(61*time.Minute), time.Hour)
	if len(got) != len(keys)-1 || LogDistance(tab.SelfKey(), got[len(got)-1]) != 255 {
		t.Fatalf("after touching bucket 256: %d targets", len(got))
	}
}

// TestTableKeepsTheNearest: whatever the order nodes arrive in, the table holds the K nodes nearest its own key
// (KeepNearest, the default), even when they fall in a bucket that filled up with farther nodes first; a displaced
// node waits in the replacement cache.
func TestTableKeepsTheNearest(t *testing.T) {
	for seed := range uint64(20) {
		rng := newRand(100 + seed)
		self := randID(rng)
		cfg := DefaultTableConfig()
		cfg.K = 8
		tab, _ := NewTable(self, cfg)
		var all []session.NodeID
		for i := range 400 {
			id := randID(rng)
			all = append(all, id)
			tab.Add(Entry{ID: id, Addr: fmt.Sprintf("10.%d.%d.1:1", i/256, i%256)}, t0)
		}
		selfKey := KeyOf(self)
		slices.SortFunc(all, func(a, b session.NodeID) int { return DistCmp(selfKey, KeyOf(a), KeyOf(b)) })
		got := ids(tab.Closest(selfKey, cfg.K))
		if !slices.Equal(got, all[:cfg.K]) {
			t.Fatalf("seed %d: the table's %d nearest are not the %d nearest added", seed, cfg.K, cfg.K)
		}
		displaced := 0
		for _, n := range tab.ReplacementLens() {
			displaced += n
		}
		if displaced == 0 {
			t.Fatalf("seed %d: no replacement cached at all", seed)
		}
	}

	// The classic bucket keeps the first comers.
	rng := newRand(7)
	self := randID(rng)
	cfg := DefaultTableConfig()
	cfg.K, cfg.KeepNearest = 2, false
	tab, _ := NewTable(self, cfg)
	first := []session.NodeID{idInBucket(rng, self, 256), idInBucket(rng, self, 256)}
	for i, id := range first {
		tab.Add(Entry{ID: id, Addr: fmt.Sprintf("10.0.%d.1:1", i)}, t0)
	}
	for i := range 10 {
		if r := tab.Add(Entry{ID: idInBucket(rng, self, 256), Addr: fmt.Sprintf("10.1.%d.1:1", i)}, t0); r.Status != Pending {
			t.Fatalf("classic bucket: newcomer %v, want pending", r.Status)
		}
	}
}

func TestDomainOfGroupsNamesByRegisteredDomain(t *testing.T) {
	for host, want := range map[string]string{
		"node.example":             "node.example",
		"A.B.Node.Example.":        "node.example",
		"n1.203.0.113.7.nip.io":    "nip.io",
		"boot1.eth.example.co.uk":  "example.co.uk",
		"x.y.example.com.au":       "example.com.au",
		"seed.example.de":          "example.de",
		"a.b.uk":                   "b.uk",
		"localhost":                "localhost",
		"bootnode.internal.corp.z": "corp.z",
		"node1.go.com":             "go.com", // a second-level label under a three-letter top-level domain
	} {
		if got := domainOf(host); got != want {
			t.Errorf("domainOf(%q) = %q, want %q", host, got, want)
		}
	}
}
