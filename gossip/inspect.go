package gossip

// What the Router tells of its state: its counters, and the peers and mesh links of a topic.

import (
	"slices"

	"github.com/actormesh/actormesh/session"
)

// Stats returns the counters.
func (r *Router) Stats() Stats { return r.stats }

// MeshPeers returns the eager and the lazy mesh links of a topic.
func (r *Router) MeshPeers(name string) (eager, lazy []session.NodeID) {
	if t := r.topics[name]; t != nil {
		for _, l := range t.mesh {
			if l.eager {
				eager = append(eager, l.id)
			} else {
				lazy = append(lazy, l.id)
			}
		}
	}
	return eager, lazy
}

// PeerTopics returns the topics a peer is subscribed to, as it announced them.
func (r *Router) PeerTopics(id session.NodeID) []string {
	p := r.peers[id]
	if p == nil {
		return nil
	}
	out := make([]string, 0, len(p.topics))
	for t := range p.topics {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// TopicPeers returns the peers subscribed to a topic.
func (r *Router) TopicPeers(name string) []session.NodeID {
	if t := r.topics[name]; t != nil {
		return slices.Clone(t.peers)
	}
	return nil
}
