package gossip

import (
	"encoding/binary"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// queue is a FIFO ring buffer that grows and shrinks with its content.
type queue[T any] struct {
	buf     []T
	head, n int
}

func (q *queue[T]) len() int { return q.n }

// at returns the i-th element from the front.
func (q *queue[T]) at(i int) T { return q.buf[(q.head+i)%len(q.buf)] }

func (q *queue[T]) push(v T) {
	if q.n == len(q.buf) {
		q.resize(max(16, 2*len(q.buf)))
	}
	q.buf[(q.head+q.n)%len(q.buf)] = v
	q.n++
}

func (q *queue[T]) pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	if len(q.buf) > 64 && q.n < len(q.buf)/4 {
		q.resize(len(q.buf) / 2)
	}
	return v
}

func (q *queue[T]) resize(size int) {
	buf := make([]T, size)
	for i := range q.n {
		buf[i] = q.at(i)
	}
	q.buf, q.head = buf, 0
}

// seenCache remembers message ids for a time, bounded in count: the oldest id is forgotten first. An id may be
// forgotten early (forget); its entry stays in order until it comes out, and counts towards a bound of twice max.
type seenCache struct {
	ids   map[MsgID]uint32 // id → the number of its entry in order
	order queue[seenEntry]
	next  uint32 // the number of the next entry
	max   int
	ttl   time.Duration
}

type seenEntry struct {
	id MsgID
	n  uint32 // the entry's number: a forgotten id's old entry does not remove the id added again
	at int64  // Unix nanoseconds
}

func newSeenCache(max int, ttl time.Duration) seenCache {
	return seenCache{ids: make(map[MsgID]uint32), max: max, ttl: ttl}
}

func (s *seenCache) len() int { return len(s.ids) }

func (s *seenCache) has(id MsgID) bool {
	_, ok := s.ids[id]
	return ok
}

// add records id at time now; id must not be present.
func (s *seenCache) add(id MsgID, now time.Time) {
	for len(s.ids) >= s.max || s.order.len() >= 2*s.max {
		s.pop()
	}
	s.ids[id] = s.next
	s.order.push(seenEntry{id, s.next, now.UnixNano()})
	s.next++
}

// live returns the entries of the ids remembered, oldest first.
func (s *seenCache) live() []seenEntry {
	out := make([]seenEntry, 0, len(s.ids))
	for i := range s.order.len() {
		e := s.order.at(i)
		if n, ok := s.ids[e.id]; ok && n == e.n {
			out = append(out, e)
		}
	}
	return out
}

// forget removes id, as if it had never been seen.
func (s *seenCache) forget(id MsgID) { delete(s.ids, id) }

// expire forgets the ids recorded SeenTTL or longer before now.
func (s *seenCache) expire(now time.Time) {
	for s.order.len() > 0 && now.UnixNano()-s.order.at(0).at >= int64(s.ttl) {
		s.pop()
	}
}

// pop removes the oldest entry, and its id unless that was forgotten and added again since.
func (s *seenCache) pop() {
	e := s.order.pop()
	if n, ok := s.ids[e.id]; ok && n == e.n {
		delete(s.ids, e.id)
	}
}

// cached is a message held to answer IWANT.
type cached struct {
	msg       *Message
	from      session.NodeID   // the peer it came from; zero for a local publication
	at        int64            // when it was accepted, in Unix nanoseconds (a time.Time takes 16 bytes more)
	beat      uint64           // the heartbeat count when it was accepted
	announced int              // heartbeats that have announced it
	dueBeat   uint64           // the heartbeat count when it was first announced
	holders   []uint64         // holderKey of each peer known to hold it (it announced or pushed it, or we pushed it to it)
	iwanted   map[uint64]uint8 // holderKey → times the peer got it by IWANT (serveIWant); nil until asked
	inline    [4]uint64        // holders' first array: most messages have a parent and a child or two
}

// holderKey is a peer's key in a cached message's holders: the first 8 bytes of its id, a quarter of the memory of
// the whole id (the cache holds every message of HistoryLength heartbeats). Ids are public keys, so keys collide
// by chance only (2^-64 per pair), and a collision merely spares a peer an IHAVE: it gets the message from others.
func holderKey(id session.NodeID) uint64 { return binary.LittleEndian.Uint64(id[:8]) }

func newCached(msg *Message, from session.NodeID, at time.Time, beat uint64) *cached {
	e := &cached{msg: msg, from: from, at: at.UnixNano(), beat: beat}
	e.holders = e.inline[:0]
	return e
}

// maxHolders caps the peers remembered per cached message as holding it already; they are spared its IHAVE.
const maxHolders = 16

func (e *cached) addHolder(id session.NodeID) {
	if k := holderKey(id); len(e.holders) < maxHolders && !slices.Contains(e.holders, k) {
		e.holders = append(e.holders, k)
	}
}

// maxIWantServes is how many times one peer gets one cached message in answer to its IWANTs (gossipsub's
// GossipRetransmission): an honest peer asks once, again if an answer was lost. Without it a peer naming one large
// message many times drew it back as many times (459 bytes in, 3.8 MiB out), every heartbeat.
const maxIWantServes = 3

// serveIWant counts a serve of the message to peer id, or reports false: with repeated set when id has had it
// maxIWantServes times, unset when askers peers have asked for it already and id is not one of them.
func (e *cached) serveIWant(id session.NodeID, askers int) (ok, repeated bool) {
	k := holderKey(id)
	n, asked := e.iwanted[k]
	switch {
	case n >= maxIWantServes:
		return false, true
	case !asked && len(e.iwanted) >= askers:
		return false, false
	}
	if e.iwanted == nil {
		e.iwanted = make(map[uint64]uint8)
	}
	e.iwanted[k] = n + 1
	return true, false
}

func (e *cached) held(id session.NodeID) bool {
	return id == e.from || id == e.msg.Origin || slices.Contains(e.holders, holderKey(id))
}

// msgCache holds recently accepted messages in arrival order, bounded in heartbeats, count and bytes.
type msgCache struct {
	byID     map[MsgID]*cached
	order    queue[*cached]
	bytes    int
	maxMsgs  int
	maxBytes int
}

func newMsgCache(maxMsgs, maxBytes int) msgCache {
	return msgCache{byID: make(map[MsgID]*cached), maxMsgs: maxMsgs, maxBytes: maxBytes}
}

func (c *msgCache) get(id MsgID) *cached { return c.byID[id] }

// add caches e, evicting the oldest messages to make room; a message larger than the byte limit is not cached.
func (c *msgCache) add(e *cached) {
	size := e.msg.size()
	if size > c.maxBytes || c.byID[e.msg.ID] != nil {
		return
	}
	for c.order.len() > 0 && (c.order.len() >= c.maxMsgs || c.bytes+size > c.maxBytes) {
		c.evict()
	}
	c.byID[e.msg.ID] = e
	c.order.push(e)
	c.bytes += size
}

// expire evicts the messages accepted history or more heartbeats before beat.
func (c *msgCache) expire(beat uint64, history int) {
	for c.order.len() > 0 && beat-c.order.at(0).beat >= uint64(history) {
		c.evict()
	}
}

func (c *msgCache) evict() {
	e := c.order.pop()
	delete(c.byID, e.msg.ID)
	c.bytes -= e.msg.size()
}
