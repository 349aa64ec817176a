package routing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// KeyBits is the size of the Kademlia key space in bits, and so the number of buckets of a Table.
const KeyBits = 256

// Errors of the table and its configuration.
var (
	// ErrInvalidConfig is wrapped by the errors of TableConfig.Validate and NewRecordBook.
	ErrInvalidConfig = errors.New("routing: invalid config")
	// ErrBadKey is wrapped by the errors of KeyFromBytes.
	ErrBadKey = errors.New("routing: bad key")
)

// TableConfig configures a Table. Start from DefaultTableConfig.
type TableConfig struct {
	// K is the bucket size (default 20).
	K int
	// Replacements is the size of each bucket's replacement cache (default 10; 0 disables it).
	Replacements int
	// BucketIPLimit is the most entries of one IP group (/24 for IPv4, /64 for IPv6, a registered domain for host
	// names: every *.svc.cluster.local name is one group) in one bucket, and also in one bucket's replacement cache
	// (default 2; 0 means no limit).
	BucketIPLimit int
	// TableIPLimit is the most entries of one IP group in the whole table (default 10; 0 means no limit).
	TableIPLimit int
	// ExemptLoopback makes loopback addresses bypass the IP limits, for local tests (default false).
	ExemptLoopback bool
	// ExemptPrivate makes private-network addresses (RFC 1918, carrier-grade NAT's 100.64.0.0/10, IPv6 unique
	// local) bypass the IP limits, as go-ethereum exempts LAN addresses: a fleet on one private network (a data
	// centre's subnet, a container bridge) shares a /24, and with the limits each node's table held 10 of its
	// nodes at most. Default false; a node whose own address is on a private network turns it on (actors.Node),
	// so that a node on a public address keeps the limits against records naming private addresses, which anyone
	// may sign.
	ExemptPrivate bool
	// MaxFailures is the number of consecutive failed liveness checks after which an entry is removed (default 2).
	MaxFailures int
	// FailureSpacing is the least time between two failed liveness checks of an entry that both count towards
	// MaxFailures (default 30s; 0: any check sent after the failure counted last counts): see MarkFailed. A failed
	// check makes the entry a suspect, as memberlist's suspicion does, and only a check sent FailureSpacing later
	// that fails too confirms it gone: two checks a few seconds apart fail together in one stall of a loaded host
	// (its own, or the peer's), and evicted live nodes that the gone mark then kept out for 30 minutes (a review
	// ran 300 nodes on one loaded host, none of which stopped: 162 live entries evicted). CheckDue tells when the
	// next check of a failed entry counts; the revalidation waits for it.
	FailureSpacing time.Duration
	// LookupFailureSpacing is the least time between two failed requests of this node's lookups to an entry that
	// both count towards MaxLookupFailures (default 30s; 0: any request sent after the failure counted last counts):
	// see MarkLookupFailed. As FailureSpacing for the liveness checks: lookups a few seconds apart all fail in one
	// stall of a loaded host, and a 500-node join on a loaded 2-core host removed over a hundred live nodes so, kept
	// out by their gone marks, and its tables did not converge.
	LookupFailureSpacing time.Duration
	// MaxLookupFailures is the number of requests of this node's lookups to an entry that went unanswered in a row
	// (timed out, or their dial failed), with no answer of the node's in between, after which the entry is removed
	// (default 3; 0 holds no lookup's failure against the table): see MarkLookupFailed. It is counted apart from
	// MaxFailures and set higher, as go-ethereum's table drops a node after 5 failed FINDNODE requests: a busy node
	// may miss a request, and only a run of them with no answer in between says it is gone.
	MaxLookupFailures int
	// KeepNearest keeps the K entries nearest the own key in the table (default true): a newcomer among them
	// takes the place of the farthest entry of its full bucket, which moves to the replacement cache. Without it a
	// full bucket only changes when an entry fails its checks, and the bucket that cuts through the own
	// neighbourhood holds whichever nodes came first, not the nearest ones that lookups need.
	KeepNearest bool
}

// DefaultTableConfig returns the default configuration: k = 20, 10 replacements, 2 per /24 in a bucket, 10 per /24
// in the table, no loopback exemption, removal after 2 failed liveness checks in a row at least 30s apart or 3
// failed lookup requests in a row at least 30s apart, the K nearest kept.
func DefaultTableConfig() TableConfig {
	return TableConfig{
		K: 20, Replacements: 10, BucketIPLimit: 2, TableIPLimit: 10, MaxFailures: 2, FailureSpacing: 30 * time.Second,
		MaxLookupFailures: 3, LookupFailureSpacing: 30 * time.Second, KeepNearest: true,
	}
}

// Validate checks c; errors wrap ErrInvalidConfig.
func (c TableConfig) Validate() error {
	switch {
	case c.K < 1:
		return fmt.Errorf("%w: K = %d, want >= 1", ErrInvalidConfig, c.K)
	case c.Replacements < 0:
		return fmt.Errorf("%w: Replacements = %d, want >= 0", ErrInvalidConfig, c.Replacements)
	case c.BucketIPLimit < 0:
		return fmt.Errorf("%w: BucketIPLimit = %d, want >= 0", ErrInvalidConfig, c.BucketIPLimit)
	case c.TableIPLimit < 0:
		return fmt.Errorf("%w: TableIPLimit = %d, want >= 0", ErrInvalidConfig, c.TableIPLimit)
	case c.MaxFailures < 1:
		return fmt.Errorf("%w: MaxFailures = %d, want >= 1", ErrInvalidConfig, c.MaxFailures)
	case c.FailureSpacing < 0:
		return fmt.Errorf("%w: FailureSpacing = %v, want >= 0", ErrInvalidConfig, c.FailureSpacing)
	case c.LookupFailureSpacing < 0:
		return fmt.Errorf("%w: LookupFailureSpacing = %v, want >= 0", ErrInvalidConfig, c.LookupFailureSpacing)
	case c.MaxLookupFailures < 0:
		return fmt.Errorf("%w: MaxLookupFailures = %d, want >= 0 (0 holds no lookup's failure against the table)",
			ErrInvalidConfig, c.MaxLookupFailures)
	}
	return nil
}

// Entry is a node known to the table.
type Entry struct {
	// ID is the node's identity.
	ID session.NodeID
	// Key is KeyOf(ID); Table.Add and Lookup compute it themselves.
	Key Key
	// Addr is the host:port to reach the node at.
	Addr string
	// Record is the node's verified record, if known. The table does not verify it.
	Record *messages.NodeRecord
	// AddedAt is when the entry entered the table (or its replacement cache).
	AddedAt time.Time
	// LastSeen is when the node was added or last found alive.
	LastSeen time.Time
	// Failures counts consecutive failed liveness checks, as MarkFailed counts them; FailedAt is when the last of
	// them was counted.
	Failures int
	FailedAt time.Time
	// LookupFailures counts the requests of this node's lookups to the node that went unanswered since it last
	// answered this node (MarkLookupFailed); apart from Failures, which it does not change. LookupFailedAt is when
	// the last of them failed: a request sent before then failed in the same stall, and is not counted again.
	LookupFailures int
	LookupFailedAt time.Time
	// AnsweredAt is when the node last answered this node itself (MarkAlive: a liveness check, a lookup's request,
	// or a request of its own); zero if it never has since it entered the table.
	AnsweredAt time.Time
}

// Answered reports whether the node has answered this node since it entered the table and failed no liveness check
// since: a node known to be up, which the periodic revalidation checks less often (Config.RevalidateAnsweredInterval).
func (e *Entry) Answered() bool { return !e.AnsweredAt.IsZero() && e.Failures == 0 }

// AddStatus is the outcome of Table.Add.
type AddStatus int

// Outcomes of Table.Add.
const (
	// Added means the entry was inserted as the bucket's most recently seen; a node that was waiting in the
	// replacement cache keeps the LastSeen it had there and is placed by it, as a promoted one is.
	Added AddStatus = iota + 1
	// Updated means the node was already in the table: its address and record were refreshed. Its LastSeen and its
	// place in the bucket stay: others naming a node say nothing of its liveness (a dead node's record relayed on
	// would otherwise keep it from being checked); MarkAlive records that.
	Updated
	// Pending means the bucket is full: the entry went to the replacement cache (a node already waiting there keeps
	// its place and LastSeen, its address and record refreshed) and AddResult.Check names the least recently seen
	// entry, which the caller should check for liveness (MarkAlive or MarkFailed).
	Pending
	// RejectedIP means an IP diversity limit refused the entry.
	RejectedIP
	// RejectedSelf means the entry is the table's own node.
	RejectedSelf
	// RejectedAddr means Entry.Addr is not a valid host:port (the rules of VerifyRecord's addresses, but no length
	// limit).
	RejectedAddr
)

// String returns the name of s.
func (s AddStatus) String() string {
	switch s {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Pending:
		return "pending"
	case RejectedIP:
		return "rejected-ip"
	case RejectedSelf:
		return "rejected-self"
	case RejectedAddr:
		return "rejected-addr"
	}
	return "AddStatus(" + strconv.Itoa(int(s)) + ")"
}

// AddResult is the outcome of Table.Add.
type AddResult struct {
	Status AddStatus
	// Check is a copy of the entry to check for liveness when Status is Pending, nil otherwise.
	Check *Entry
}

// slot is an Entry and its IP group.
type slot struct {
	e Entry
	g ipGroup
}

// bucket holds the entries at one log distance from the table's own key.
type bucket struct {
	entries      []slot    // least recently seen first
	replacements []slot    // most recently added last
	lastLookup   time.Time // when a lookup for a key in this bucket last started
}

// Table is a Kademlia routing table: 256 buckets, bucket i holding up to K entries at log distance i+1 from the
// node's own key, each with a replacement cache. A full bucket evicts its least recently seen entry only after that
// entry fails MaxFailures liveness checks in a row, and a node waiting in a replacement cache leaves it by the same
// rule (see Add, MarkAlive, MarkFailed); any entry also leaves after MaxLookupFailures unanswered requests of the
// node's lookups in a row (MarkLookupFailed). IP diversity limits bound how many
// entries share a /24 (IPv4, including IPv4-mapped IPv6) or /64 (IPv6) prefix, per bucket and in the whole table;
// host names (not IP addresses) form one group per registered domain, compared case-insensitively (node-a.example.com
// and node-b.example.com share example.com's; see TableConfig's limits). The zero Table is not usable: call NewTable.
type Table struct {
	self    session.NodeID
	selfKey Key
	cfg     TableConfig
	buckets [KeyBits]*bucket // allocated on first use
	groups  map[ipGroup]int  // entries per IP group in the table (not counting replacements)
	n       int
}

// NewTable returns an empty table for the node self; cfg must pass Validate.
func NewTable(self session.NodeID, cfg TableConfig) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Table{self: self, selfKey: KeyOf(self), cfg: cfg, groups: make(map[ipGroup]int)}, nil
}

// Self returns the table's own node.
func (t *Table) Self() session.NodeID { return t.self }

// SelfKey returns KeyOf(Self()).
func (t *Table) SelfKey() Key { return t.selfKey }

// Config returns the table's configuration.
func (t *Table) Config() TableConfig { return t.cfg }

// Len returns the number of entries in the table, not counting replacement caches.
func (t *Table) Len() int { return t.n }

// bucketAt returns the bucket for log distance d (1..256), allocating it if needed.
func (t *Table) bucketAt(d int) *bucket {
	b := t.buckets[d-1]
	if b == nil {
		b = &bucket{}
		t.buckets[d-1] = b
	}
	return b
}

// find returns the bucket of id and id's index in its entries, or nil and -1.
func (t *Table) find(id session.NodeID) (*bucket, int) {
	d := LogDistance(t.selfKey, KeyOf(id))
	if d == 0 || t.buckets[d-1] == nil {
		return nil, -1
	}
	b := t.buckets[d-1]
	return b, indexOf(b.entries, id)
}

// indexOf returns the index of id in s, or -1.
func indexOf(s []slot, id session.NodeID) int {
	for i := range s {
		if s[i].e.ID == id {
			return i
		}
	}
	return -1
}

// moveToBack moves s[i] to the end of s.
func moveToBack(s []slot, i int) {
	x := s[i]
	copy(s[i:], s[i+1:])
	s[len(s)-1] = x
}

// Add inserts or refreshes a node heard of at time now. The table computes e.Key itself and sets AddedAt, LastSeen
// and Failures; it does not verify e.Record (a nil Record keeps the one held). See AddStatus for the outcomes. A
// full bucket evicts on Add only to keep the K nearest entries (TableConfig.KeepNearest); otherwise the new entry
// waits in the replacement cache (the Replacements that arrived last kept; hearing of a waiting node again neither
// moves it nor refreshes its LastSeen) until an entry fails its liveness checks; with
// Replacements = 0 it is not kept, but Check is still named. An entry
// whose address changes to another IP group is subject to the limits again; when they refuse it, the entry stays
// unchanged.
func (t *Table) Add(e Entry, now time.Time) AddResult {
	if e.ID == t.self {
		return AddResult{Status: RejectedSelf}
	}
	g, ok := t.groupOf(e.Addr)
	if !ok {
		return AddResult{Status: RejectedAddr}
	}
	e.Key = KeyOf(e.ID)
	d := LogDistance(t.selfKey, e.Key)
	b := t.bucketAt(d)
	if i := indexOf(b.entries, e.ID); i >= 0 {
		s := &b.entries[i]
		if g != s.g {
			if !t.fits(b, g) {
				return AddResult{Status: RejectedIP}
			}
			t.addGroup(s.g, -1)
			t.addGroup(g, +1)
			s.g = g
		}
		s.e.Addr = e.Addr
		if e.Record != nil {
			s.e.Record = e.Record
		}
		return AddResult{Status: Updated} // hearing of a node is no sign of life: LastSeen and its place stay
	}
	e.AddedAt, e.LastSeen, e.AnsweredAt = now, now, time.Time{}
	e.Failures, e.FailedAt, e.LookupFailures, e.LookupFailedAt = 0, time.Time{}, 0, time.Time{}
	ri := indexOf(b.replacements, e.ID)
	if ri >= 0 {
		// Hearing of a waiting node again is no sign of life either: its LastSeen and its failed checks and lookup
		// requests stay, and so does its place in the cache (below). Until stop 59 its LastSeen became now and it
		// moved to the cache's most recent place, so a peer naming it over and over kept it first in line for
		// promotion, looking fresh.
		w := &b.replacements[ri].e
		e.AddedAt, e.LastSeen, e.AnsweredAt, e.Failures = w.AddedAt, w.LastSeen, w.AnsweredAt, w.Failures
		e.LookupFailures, e.LookupFailedAt = w.LookupFailures, w.LookupFailedAt
	}
	if !t.fits(b, g) {
		return AddResult{Status: RejectedIP} // a node waiting in the cache stays there as it was
	}
	// A node waiting in the cache leaves it only as it takes another place: refused for its group below, it keeps
	// the one it had (it used to be dropped first, and lost).
	leaveCache := func() {
		if ri >= 0 {
			b.replacements = slices.Delete(b.replacements, ri, ri+1)
			ri = -1
		}
	}
	if len(b.entries) < t.cfg.K {
		leaveCache()
		e.AddedAt = now
		insertBySeen(b, slot{e: e, g: g})
		t.addGroup(g, +1)
		t.n++
		return AddResult{Status: Added}
	}
	if far := t.displaceable(b, d, e.Key); far >= 0 {
		leaveCache()
		// The newcomer is among the K nodes closest to the table's own key: it takes the place of the bucket's
		// entry farthest from that key, which waits in the replacement cache. The table thus always holds the
		// node's own neighbourhood, whose exactness lookups depend on (the bucket split of the Kademlia paper
		// near the node's own key; go-libp2p's table unfolds its last bucket for the same reason).
		out := b.entries[far]
		t.addGroup(out.g, -1)
		b.entries = slices.Delete(b.entries, far, far+1)
		e.AddedAt = now
		insertBySeen(b, slot{e: e, g: g})
		t.addGroup(g, +1)
		t.addReplacement(b, out)
		return AddResult{Status: Added}
	}
	check := b.entries[0].e
	inGroup := countGroup(b.replacements, g)
	if ri >= 0 && b.replacements[ri].g == g {
		inGroup-- // its own place there
	}
	if g != (ipGroup{}) && t.cfg.BucketIPLimit > 0 && inGroup >= t.cfg.BucketIPLimit {
		return AddResult{Status: RejectedIP}
	}
	if ri >= 0 { // still waiting: its address and record refreshed in its place, as an entry's (Updated)
		w := &b.replacements[ri]
		w.e.Addr, w.g = e.Addr, g
		if e.Record != nil {
			w.e.Record = e.Record
		}
	} else {
		t.addReplacement(b, slot{e: e, g: g})
	}
	return AddResult{Status: Pending, Check: &check}
}

// insertBySeen puts s among b's entries by its LastSeen, after every entry seen no later: a new node, seen now, goes
// last; a node that waited in the replacement cache keeps the LastSeen it had there, and so its staleness.
func insertBySeen(b *bucket, s slot) {
	pos := len(b.entries)
	for pos > 0 && b.entries[pos-1].e.LastSeen.After(s.e.LastSeen) {
		pos--
	}
	b.entries = slices.Insert(b.entries, pos, s)
}

// addReplacement puts s in b's replacement cache as its most recent entry, dropping the oldest beyond the cap.
func (t *Table) addReplacement(b *bucket, s slot) {
	if t.cfg.Replacements == 0 ||
		s.g != (ipGroup{}) && t.cfg.BucketIPLimit > 0 && countGroup(b.replacements, s.g) >= t.cfg.BucketIPLimit {
		return
	}
	if len(b.replacements) >= t.cfg.Replacements {
		b.replacements = slices.Delete(b.replacements, 0, 1)
	}
	b.replacements = append(b.replacements, s)
}

// displaceable returns the index of the entry of the full bucket b (at log distance d) that a newcomer with key k
// should replace, or -1: the newcomer must be among the K closest to the table's own key of all the table's entries
// and itself, and the entry the farthest of the bucket from the own key (hence not among them).
func (t *Table) displaceable(b *bucket, d int, k Key) int {
	if !t.cfg.KeepNearest {
		return -1
	}
	closer := 0
	for i := 0; i < d-1; i++ { // buckets nearer to the own key than b
		if t.buckets[i] != nil {
			closer += len(t.buckets[i].entries)
		}
	}
	if closer >= t.cfg.K {
		return -1
	}
	far := -1
	for i := range b.entries {
		if DistCmp(t.selfKey, b.entries[i].e.Key, k) < 0 {
			if closer++; closer >= t.cfg.K {
				return -1
			}
		}
		if far < 0 || DistCmp(t.selfKey, b.entries[i].e.Key, b.entries[far].e.Key) > 0 {
			far = i
		}
	}
	if DistCmp(t.selfKey, b.entries[far].e.Key, k) < 0 {
		return -1
	}
	return far
}

// removeAt removes b.entries[i] from the table.
func (t *Table) removeAt(b *bucket, i int) {
	t.addGroup(b.entries[i].g, -1)
	b.entries = slices.Delete(b.entries, i, i+1)
	t.n--
}

// promote moves the most recent replacement of b that passes the IP limits into b's entries, placed by LastSeen.
func (t *Table) promote(b *bucket, now time.Time) {
	for j := len(b.replacements) - 1; j >= 0; j-- {
		s := b.replacements[j]
		if !t.fits(b, s.g) {
			continue
		}
		b.replacements = slices.Delete(b.replacements, j, j+1)
		s.e.AddedAt = now
		insertBySeen(b, s)
		t.addGroup(s.g, +1)
		t.n++
		return
	}
}

// Remove drops id from the table (and from the replacement caches) and reports whether it was in the table. It does
// not promote a replacement; use it for banned or departed nodes, and MarkFailed for unresponsive ones.
func (t *Table) Remove(id session.NodeID) bool {
	b, i := t.find(id)
	if b == nil {
		return false
	}
	if j := indexOf(b.replacements, id); j >= 0 {
		b.replacements = slices.Delete(b.replacements, j, j+1)
	}
	if i < 0 {
		return false
	}
	t.removeAt(b, i)
	return true
}

// AtIP returns the nodes, in the table's entries or its replacement caches, whose address is at ip (an IPv4-mapped
// IPv6 address matches its IPv4 one); addresses by host name never match.
func (t *Table) AtIP(ip netip.Addr) []session.NodeID {
	ip = ip.WithZone("").Unmap()
	var out []session.NodeID
	at := func(slots []slot) {
		for i := range slots {
			if _, a, err := splitAddr(slots[i].e.Addr); err == nil && a.WithZone("").Unmap() == ip {
				out = append(out, slots[i].e.ID)
			}
		}
	}
	for _, b := range t.buckets {
		if b != nil {
			at(b.entries)
			at(b.replacements)
		}
	}
	return out
}

// Get returns the table's entry for id.
func (t *Table) Get(id session.NodeID) (Entry, bool) {
	b, i := t.find(id)
	if i < 0 {
		return Entry{}, false
	}
	return b.entries[i].e, true
}

// RecordSeq returns the sequence number of the record held for id, in the table's entries or waiting in a
// replacement cache, and false if no record is held for it.
func (t *Table) RecordSeq(id session.NodeID) (uint64, bool) {
	b, i := t.find(id)
	switch {
	case b == nil:
		return 0, false
	case i >= 0:
		if r := b.entries[i].e.Record; r != nil {
			return r.GetSeq(), true
		}
	default:
		if j := indexOf(b.replacements, id); j >= 0 && b.replacements[j].e.Record != nil {
			return b.replacements[j].e.Record.GetSeq(), true
		}
	}
	return 0, false
}

// Stalest returns the entry seen least recently among those skip does not exclude (skip may be nil), and false
// if there is none. It copies only that entry: the periodic revalidation calls it on every tick.
func (t *Table) Stalest(skip func(session.NodeID) bool) (Entry, bool) {
	return t.stalest(func(e *Entry) bool { return skip == nil || !skip(e.ID) })
}

// StalestOf is Stalest among the entries whose Answered is answered: the periodic revalidation checks the two kinds
// at their own rates.
func (t *Table) StalestOf(answered bool, skip func(session.NodeID) bool) (Entry, bool) {
	return t.stalest(func(e *Entry) bool { return e.Answered() == answered && (skip == nil || !skip(e.ID)) })
}

func (t *Table) stalest(keep func(*Entry) bool) (Entry, bool) {
	var best *Entry
	for _, b := range t.buckets {
		if b == nil {
			continue
		}
		for i := range b.entries {
			e := &b.entries[i].e
			if (best == nil || e.LastSeen.Before(best.LastSeen)) && keep(e) {
				best = e
			}
		}
	}
	if best == nil {
		return Entry{}, false
	}
	return *best, true
}

// appendBucket appends the entries at log distance d to out.
func (t *Table) appendBucket(out []Entry, d int) []Entry {
	if b := t.buckets[d-1]; b != nil {
		for i := range b.entries {
			out = append(out, b.entries[i].e)
		}
	}
	return out
}

// Entries returns every entry of the table, by increasing log distance from the node, each bucket least recently
// seen first.
func (t *Table) Entries() []Entry {
	out := make([]Entry, 0, t.n)
	for d := 1; d <= KeyBits; d++ {
		out = t.appendBucket(out, d)
	}
	return out
}

// BucketLens returns the number of entries of each bucket: element i counts the entries at log distance i+1.
func (t *Table) BucketLens() []int {
	out := make([]int, KeyBits)
	for i, b := range t.buckets {
		if b != nil {
			out[i] = len(b.entries)
		}
	}
	return out
}

// ReplacementLens returns the size of each bucket's replacement cache, indexed like BucketLens.
func (t *Table) ReplacementLens() []int {
	out := make([]int, KeyBits)
	for i, b := range t.buckets {
		if b != nil {
			out[i] = len(b.replacements)
		}
	}
	return out
}

// Touched records that a lookup for key started at time now, which counts as a refresh of key's bucket. A key
// equal to the node's own key touches nothing.
func (t *Table) Touched(key Key, now time.Time) {
	if d := LogDistance(t.selfKey, key); d > 0 {
		t.bucketAt(d).lastLookup = now
	}
}

// RefreshTargets returns, for each bucket due for a refresh, a random key in that bucket's range, to look up; the
// buckets it returns count as touched at now. A bucket is due when no lookup touched it within olderThan; only
// buckets from the closest non-empty one out to log distance 256 are considered, since closer ranges are expected
// to be empty and are covered by the self-lookup the caller should also run. An empty table returns nothing.
func (t *Table) RefreshTargets(rng *rand.Rand, now time.Time, olderThan time.Duration) []Key {
	first := 0
	for i, b := range t.buckets {
		if b != nil && len(b.entries) > 0 {
			first = i + 1
			break
		}
	}
	if first == 0 {
		return nil
	}
	var out []Key
	for d := first; d <= KeyBits; d++ {
		b := t.bucketAt(d)
		if !b.lastLookup.IsZero() && now.Sub(b.lastLookup) < olderThan {
			continue
		}
		b.lastLookup = now
		out = append(out, t.RandomKeyAtDistance(rng, d))
	}
	return out
}

// RandomKeyAtDistance returns a uniformly random key at log distance d from the node's own key. d is clamped to
// 0..256; d = 0 gives the node's own key.
func (t *Table) RandomKeyAtDistance(rng *rand.Rand, d int) Key {
	d = max(0, min(d, KeyBits))
	if d == 0 {
		return t.selfKey
	}
	var x Key
	for i := 0; i < len(x); i += 8 {
		binary.BigEndian.PutUint64(x[i:], rng.Uint64())
	}
	p := d - 1 // bit position of the highest set bit of the distance, from the least significant bit
	top, bit := len(x)-1-p/8, uint(p%8)
	clear(x[:top])
	x[top] = x[top]&(1<<bit-1) | 1<<bit
	return Distance(t.selfKey, x)
}
