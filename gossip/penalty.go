package gossip

import (
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// Penalties: the count of a peer's rejected messages, kept for a while after it leaves.

// retainedPenalty is a departed peer's count of rejected messages and when it left (Router's clock).
type retainedPenalty struct {
	penalty int
	at      time.Time
}

// retainPenalty remembers a departing peer's penalty for PenaltyRetention, forgetting the longest departed first
// beyond MaxPeers of them.
func (r *Router) retainPenalty(id session.NodeID, penalty int) {
	if penalty == 0 || r.cfg.PenaltyRetention == 0 {
		return
	}
	if r.retained == nil {
		r.retained = make(map[session.NodeID]retainedPenalty)
	}
	// A peer kept already (a verdict that came after it left) takes no other's place.
	if _, kept := r.retained[id]; !kept && len(r.retained) >= r.cfg.MaxPeers {
		var oldest session.NodeID
		var at time.Time
		for id, rp := range r.retained {
			if at.IsZero() || rp.at.Before(at) {
				oldest, at = id, rp.at
			}
		}
		delete(r.retained, oldest)
	}
	r.retained[id] = retainedPenalty{penalty: penalty, at: r.now}
}

// PenalizePeer counts a message from a peer that the shell rejected before handing it to the Router (a bad
// signature, say, which must not mark its id as seen, or a malformed message) in the peer's penalty and returns the
// resulting Penalty, as Validated would. A peer gone by then (it left before an asynchronous verdict) has the
// message counted in its retained penalty (retainPenalty), so that leaving before the verdicts does not evade the
// ban. Stats.Rejected does not count it: the shell counts its own refusals (RelayStats.BadSignatures, Malformed),
// and until stop 54 they were counted in both, Rejected's "rejected by validation" included.
func (r *Router) PenalizePeer(id session.NodeID) Penalty { return r.penalty(id, "") }

// penalty counts an invalid message or report from a peer (see PenalizePeer), why for the log ("" for a rejected
// message).
func (r *Router) penalty(id session.NodeID, why string) Penalty {
	var n int
	if p := r.peers[id]; p != nil {
		p.penalty++
		n = p.penalty
	} else {
		n = 1
		if rp, ok := r.retained[id]; ok && r.now.Sub(rp.at) < r.cfg.PenaltyRetention {
			n = rp.penalty + 1
		}
		r.retainPenalty(id, n)
	}
	return Penalty{Peer: id, Count: n, Ban: r.bans(n), Why: why}
}

// bans tells whether a peer's n-th invalid message bans it: the PenaltyThreshold-th, and each PenaltyThreshold-th
// after it (a peer whose pending messages are rejected after its ban). Every rejection past the threshold used
// to ban it again, each renewing the ban and counting in RelayStats.Banned as one more peer.
func (r *Router) bans(n int) bool {
	t := r.cfg.PenaltyThreshold
	return n >= t && (n-t)%t == 0
}

// carriedPenalty is a peer's count of rejected messages handed from a failed relay's Router to its successor.
type carriedPenalty struct {
	id      session.NodeID
	penalty int
	at      time.Time // when the peer left, or the Router's clock for a peer still there
}

// carryPenalties returns the penalties the Router holds, of its peers and of the departed ones it retains, most
// recent first: what a restarted relay's next Router starts from (inheritPenalties), so that a restart does not
// clear a peer's way to its ban.
func (r *Router) carryPenalties() []carriedPenalty {
	var out []carriedPenalty
	for id, p := range r.peers {
		if p.penalty > 0 {
			out = append(out, carriedPenalty{id: id, penalty: p.penalty, at: r.now})
		}
	}
	for id, rp := range r.retained {
		out = append(out, carriedPenalty{id: id, penalty: rp.penalty, at: rp.at})
	}
	slices.SortFunc(out, func(a, b carriedPenalty) int { return b.at.Compare(a.at) })
	return out
}

// inheritPenalties retains the penalties of a predecessor's carryPenalties that PenaltyRetention has not expired
// at now, the most recent first, within the MaxPeers the Router retains; a peer added later (AddPeer) takes its
// count back, as one that reconnects does.
func (r *Router) inheritPenalties(entries []carriedPenalty, now time.Time) {
	now = r.clock(now)
	for _, e := range entries {
		if len(r.retained) >= r.cfg.MaxPeers {
			return
		}
		if _, kept := r.retained[e.id]; kept || e.penalty == 0 || now.Sub(e.at) >= r.cfg.PenaltyRetention {
			continue
		}
		if r.retained == nil {
			r.retained = make(map[session.NodeID]retainedPenalty)
		}
		r.retained[e.id] = retainedPenalty{penalty: e.penalty, at: e.at}
	}
}
