package gossip

// What the Router waits for: messages awaiting their verdict (pending), with the peers to ask for another copy should
// this one fail it, and outstanding IWANTs (want), with their announcers.

import (
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// maxWantSources is how many announcers of a wanted message are remembered, to ask in turn.
const maxWantSources = 3

// pending is a message awaiting its verdict.
type pending struct {
	msg  *Message
	from session.NodeID
	at   time.Time
	size int // the payload bytes it holds (MaxPendingValidationBytes)
	// pulled is set when the message came as the answer to this node's IWANT: the tree did not bring it.
	pulled bool
	// alts are the first other peers that sent a copy meanwhile (a duplicate) or announced the id (IHAVE), asked
	// for it in turn should this copy not be accepted (see unsee); nalts of them are set.
	alts  [maxWantSources]session.NodeID
	nalts int
}

// addAlt records id as a peer to ask for the message should this copy not be accepted: the first maxWantSources
// peers other than the copy's sender.
func (pd *pending) addAlt(id session.NodeID) {
	if id != pd.from && pd.nalts < len(pd.alts) && !slices.Contains(pd.alts[:pd.nalts], id) {
		pd.alts[pd.nalts] = id
		pd.nalts++
	}
}

// want is an outstanding IWANT: the announcers of the message, the number already asked and when the last was.
// It is kept, done, until IWantTimeout after the message arrived, to tell late answers from eager pushes.
type want struct {
	src  [maxWantSources]session.NodeID
	n    int
	next int
	at   time.Time
	done bool
}

func (w *want) addSource(id session.NodeID) {
	if w.n < len(w.src) && !slices.Contains(w.src[:w.n], id) {
		w.src[w.n] = id
		w.n++
	}
}

// newWant records an outstanding IWANT of id, announced first by from, unless MaxPendingIWant or from's share
// (MaxPendingIWantPerPeer) is reached: then it returns nil.
func (r *Router) newWant(id MsgID, from session.NodeID, now time.Time) *want {
	p := r.peers[from]
	if p == nil || len(r.wants) >= r.cfg.MaxPendingIWant || p.wants >= r.cfg.MaxPendingIWantPerPeer {
		return nil
	}
	p.wants++
	w := &want{at: now}
	w.addSource(from)
	r.wants[id] = w
	return w
}

// dropWant forgets an outstanding IWANT, and counts it off its first announcer's share.
func (r *Router) dropWant(id MsgID, w *want) {
	delete(r.wants, id)
	if p := r.peers[w.src[0]]; p != nil && p.wants > 0 {
		p.wants--
	}
}

func (w *want) asked(id session.NodeID) bool { return slices.Contains(w.src[:w.next], id) }

// unsee forgets the id of a message that validation did not accept, so that another copy is validated afresh:
// with content ids (DefaultMsgID), a hostile peer's copy of someone else's content, signed as its own, has the
// genuine message's id, and must not suppress it. The peers that sent a copy or announced the id while this one was
// pending become the IWANT's announcers and the first is asked at once; the IWANT goes on to the next ones as for
// any announcement. An announcement heard while the id was pending used to be dropped: a mesh link announces each
// id once, so a forged copy awaiting a slow verdict kept the genuine message from a node that only heard of it.
func (r *Router) unsee(b *builder, pd *pending, now time.Time) {
	id := pd.msg.ID
	r.seen.forget(id)
	w := r.wants[id]
	if w != nil {
		w.done = false
	}
	for _, alt := range pd.alts[:pd.nalts] {
		switch {
		case r.peers[alt] == nil:
		case w == nil:
			w = r.newWant(id, alt, now)
		default:
			w.addSource(alt)
		}
	}
	if w != nil {
		r.ask(b, id, w, now)
	}
}
