package actors

import (
	"sync"

	"github.com/actormesh/actormesh/session"
)

// maxGivenAddrs bounds the addresses the application gave that a node remembers as such (givenAddrs).
const maxGivenAddrs = 1024

// givenAddrs are the addresses the application gave the node (Config.Peers, the bootnodes, Connect, AddAddress),
// which it dials as given. Any other address the node learned from the network: from a record, or from what a peer
// declared in its handshake. A dial of one is checked once its host name is resolved (routing.DialCheck): a node
// dials no address that reaches less far than its own (its host or link) at a peer's word.
// Bounded: beyond maxGivenAddrs, more given addresses are checked as learned ones.
type givenAddrs struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (g *givenAddrs) add(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.m) < maxGivenAddrs {
		g.m[addr] = struct{}{}
	}
}

func (g *givenAddrs) has(addr string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[addr]
	return ok
}

// addressBookSize bounds the addresses a node remembers.
const addressBookSize = 4096

// addressBook remembers the last known dialable address of peers, bounded: when full, learning a new peer's
// address forgets another's, drawn at random (Go's map order). Dropping new ones instead let a flood of records
// fill the book for good, so that every later dial of a node learned since then looked its address up in the DHT
// first; the routing actor gives the book a table entry's address again when it checks the entry.
type addressBook struct {
	mu  sync.Mutex
	max int
	m   map[session.NodeID]string
}

func newAddressBook(max int) *addressBook {
	return &addressBook{max: max, m: make(map[session.NodeID]string)}
}

func (b *addressBook) put(id session.NodeID, addr string) {
	if addr == "" || id.IsZero() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[id]; !ok && len(b.m) >= b.max {
		for other := range b.m {
			delete(b.m, other)
			break
		}
	}
	b.m[id] = addr
}

// undo puts back prev (or forgets id, without hadPrev) in place of addr, if the book still holds addr for id: a
// put of an address proven wrong.
func (b *addressBook) undo(id session.NodeID, addr, prev string, hadPrev bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch cur, ok := b.m[id]; {
	case !ok || cur != addr:
	case hadPrev:
		b.m[id] = prev
	default:
		delete(b.m, id)
	}
}

func (b *addressBook) get(id session.NodeID) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.m[id]
	return a, ok
}
