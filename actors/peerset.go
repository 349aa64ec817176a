package actors

import (
	"slices"
	"sync"

	"github.com/actormesh/actormesh/session"
)

// peerSet is the read-mostly view of live connections, written by the peer manager and read by API callers.
type peerSet struct {
	mu    sync.RWMutex
	m     map[session.NodeID]*peerConn
	stats *nodeStats
}

func (s *peerSet) get(id session.NodeID) *peerConn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[id]
}

// set makes pc its peer's registered connection. One it replaces (a duplicate's winner taking the loser's place)
// leaves the set at once, its bytes counted as remove counts them: the peer is never without a connection in the
// set between the two, where a Send found none while the peer stayed connected.
func (s *peerSet) set(pc *peerConn) {
	s.mu.Lock()
	if old := s.m[pc.id]; old != nil && old != pc {
		s.countClosed(old)
	}
	s.m[pc.id] = pc
	s.mu.Unlock()
}

// remove deletes pc if it is still the registered connection of its peer.
func (s *peerSet) remove(pc *peerConn) {
	s.mu.Lock()
	if s.m[pc.id] == pc {
		delete(s.m, pc.id)
		s.countClosed(pc)
	}
	s.mu.Unlock()
}

// countClosed adds the bytes of pc, which leaves the set, to the closed connections' (under the lock, so that Stats
// never counts them twice or not at all).
func (s *peerSet) countClosed(pc *peerConn) {
	pc.countedIn, pc.countedOut = pc.sc.BytesRead(), pc.sc.BytesWritten()
	s.stats.closedBytesIn.Add(pc.countedIn)
	s.stats.closedBytesOut.Add(pc.countedOut)
}

// sum adds the live connections' figures to s.
func (s *peerSet) sum(st *Stats) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st.BytesIn += s.stats.closedBytesIn.Load()
	st.BytesOut += s.stats.closedBytesOut.Load()
	for _, pc := range s.m {
		if pc.outbound {
			st.PeersOutbound++
		} else {
			st.PeersInbound++
		}
		st.BytesIn += pc.sc.BytesRead()
		st.BytesOut += pc.sc.BytesWritten()
		st.QueuedBytes += pc.q.len()
	}
}

// count returns the number of live connections.
func (s *peerSet) count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

func (s *peerSet) all() []*peerConn {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*peerConn, 0, len(s.m))
	for _, pc := range s.m {
		out = append(out, pc)
	}
	return out
}

// appendIDs appends to out the ids of the connections keep accepts, under the read lock and without copying the
// set first (the gossip relay asks on every heartbeat).
func (s *peerSet) appendIDs(out []session.NodeID, keep func(*peerConn) bool) []session.NodeID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out = slices.Grow(out, len(s.m))
	for _, pc := range s.m {
		if keep(pc) {
			out = append(out, pc.id)
		}
	}
	return out
}
