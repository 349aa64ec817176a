package routing

// The routing actor's learning: the records it takes into its table, the exchanges (FindNode to one peer) outside
// lookups that bring them, and the penalty of a peer that broke the protocol.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// addRecord verifies a record and adds its node to the table and the node's address book. mayCheck lets a newcomer
// for a full bucket trigger a liveness check (Config.CheckAge); direct says the node itself sent it, over its own
// connection: a node the liveness checks evicted comes back only so, or with a newer record (goneNodes).
func (a *routingActor) addRecord(r *messages.NodeRecord, now time.Time, mayCheck, direct bool) {
	e, err := a.records.entry(r)
	if err != nil {
		if !errors.Is(err, ErrStaleRecord) { // a stale record is genuine, only old
			a.stats.BadRecords++
		}
		return
	}
	switch {
	case direct:
		a.gone.forget(e.ID)
	case a.gone.holds(e.ID, r.GetSeq(), now):
		a.stats.GoneRecords++
		return
	}
	if !dialableFrom(a.local, e.Addr) {
		a.stats.BadRecords++
		return
	}
	if seq, ok := a.table.RecordSeq(e.ID); ok && seq > r.GetSeq() {
		return // stale (in the entries or a replacement cache): keep the newer record and its address
	}
	res := a.table.Add(e, now)
	switch res.Status {
	case Added, Updated, Pending:
		a.net.AddAddress(e.ID, e.Addr)
		if res.Status == Added && !direct {
			a.learnedSecondHand() // perhaps a neighbour that does not know this node
		}
	case RejectedIP:
		a.stats.RejectedIP++
	}
	// The rate is asked first without taking its token: a check it refuses is no exchange dropped for MaxInFlight
	// (every newcomer for a full bucket counted one while MaxInFlight were busy, a review's finding), and a check
	// that cannot start keeps the token.
	if mayCheck && res.Status == Pending && res.Check != nil && !a.checking[res.Check.ID] && now.Sub(res.Check.LastSeen) >= a.cfg.CheckAge &&
		a.table.CheckDue(res.Check.ID, now) && a.checks.Ready(true, now) && a.exchangeRoom() && a.checks.Allow(true, now) &&
		a.checkEntry(*res.Check) {
		a.stats.NewcomerChecks++
	}
}

// learn adds what a peer answered: its own record and the records it returned; mayCheck as addRecord's. The peer
// answered over a connection authenticated as its own, so it is alive, with or without a record of its own in the
// answer: one that left it out (or sent a stale one, its clock gone back) used to be marked neither alive nor
// failed, and took every revalidation tick from then on.
func (a *routingActor) learn(from session.NodeID, nodes *messages.Nodes, now time.Time, mayCheck bool) {
	if s := nodes.GetSender(); s != nil {
		if e, err := a.records.entry(s); err == nil && e.ID == from {
			a.addRecord(s, now, mayCheck, true)
		} else if !staleOwn(err, s, from) {
			a.stats.BadRecords++
		}
	}
	a.gone.forget(from)
	a.table.MarkAlive(from, now)
	for _, r := range nodes.GetRecords() {
		a.addRecord(r, now, mayCheck, false)
	}
}

// staleOwn tells whether err, the check of the record r that peer from sent as its own, says only that r is stale:
// genuine and from's, only old (its clock went back), which Stats.BadRecords does not count. Another node's stale
// record sent as the sender's is counted (a review's finding: the stale check came before the id's); in an answer
// checkReply refuses it before learn, as ErrForgedSender.
func staleOwn(err error, r *messages.NodeRecord, from session.NodeID) bool {
	return errors.Is(err, ErrStaleRecord) && bytes.Equal(r.GetId(), from.Bytes())
}

// exchangeRoom reports whether an exchange may start: the actor is not ending, and fewer than MaxInFlight are in
// progress (otherwise counted in Stats.ExchangesDropped).
func (a *routingActor) exchangeRoom() bool {
	if a.ctx.Err() != nil {
		return false
	}
	if a.inFlight >= a.cfg.MaxInFlight {
		a.stats.ExchangesDropped++
		return false
	}
	return true
}

// exchange sends a FindNode to a peer in a goroutine owned by the actor, and reports whether it started
// (exchangeRoom).
func (a *routingActor) exchange(peer session.NodeID, target Key, check bool) bool {
	if !a.exchangeRoom() {
		return false
	}
	if check {
		a.checking[peer] = true
		a.stats.Checks++
	}
	a.stats.Exchanges++
	a.inFlight++
	req := &messages.FindNode{Target: target[:], Sender: a.local}
	// The deadline is fixed here, not in the goroutine: a goroutine that starts late (this node starved of CPU) sends
	// its request with less than RequestTimeout left, which checkStalled tells.
	deadline := time.Now().Add(a.cfg.RequestTimeout)
	net, self, root, from := a.net, a.self, a.root, a
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		ctx, cancel := context.WithDeadline(a.ctx, deadline)
		defer cancel()
		sent := time.Now()
		reply, err := net.Request(ctx, peer, Protocol, req)
		nodes, ok := reply.(*messages.Nodes)
		if err == nil && !ok {
			err = fmt.Errorf("routing: peer answered %T", reply)
		}
		root.Send(self, &exchangeDone{from: from, peer: peer, check: check, reply: nodes, err: err,
			deadline: deadline, sent: sent, ended: time.Now()})
	}()
	return true
}

func (a *routingActor) exchangeDone(m *exchangeDone, now time.Time) {
	a.inFlight--
	if m.check {
		delete(a.checking, m.peer)
		a.stats.Revalidations++
		if a.introductionEnded(m.peer) {
			defer a.continueIntroductions() // once this outcome is in the table
		}
	}
	if m.err == nil {
		m.err = a.records.checkReply(m.peer, m.reply)
		if m.err != nil {
			a.penalize(m.peer, m.err)
		}
	}
	if m.check {
		delete(a.busy, m.peer)
	}
	if m.err != nil {
		seq, _ := a.table.RecordSeq(m.peer)
		sent := sentAfterLocalWait(m.sent, m.err) // the time its dial waited for a local slot was this node's
		switch {
		case errors.Is(m.err, ErrPeerBanned): // its record came back while this node bans it
			a.removeBanned(m.peer, now)
		case !m.check:
		case errors.Is(m.err, ErrPeerRefused): // the peer is up: it ends a run of failures, as an answer would
			a.table.MarkUp(m.peer)
			a.deferCheck(m.peer)
		case errors.Is(m.err, ErrPeerBusy):
			a.deferCheck(m.peer)
		case errors.Is(m.err, ErrRefusedBeforeHandshake) && a.table.AnsweredSince(m.peer, now.Add(-a.cfg.RefusalGrace)):
			a.deferCheck(m.peer)
		case checkStalled(m.deadline, sent, m.ended, a.cfg.RequestTimeout):
			a.log.Debug().Str("peer", m.peer.Short()).Err(m.err).
				Dur("sent_late", sent.Sub(m.deadline.Add(-a.cfg.RequestTimeout))).Dur("ended_late", m.ended.Sub(m.deadline)).
				Msg("liveness check not held against the peer: this node ran late")
			a.deferCheck(m.peer)
		case a.table.MarkFailed(m.peer, m.sent, now):
			a.gone.add(m.peer, seq, now)
			a.stats.Evictions++
			a.log.Debug().Str("peer", m.peer.Short()).Err(m.err).Msg("evicted unresponsive node")
		}
		return
	}
	a.learn(m.peer, m.reply, now, !m.check)
}

// penalize bans a peer that broke the discovery protocol and drops it from the table.
func (a *routingActor) penalize(peer session.NodeID, err error) {
	a.stats.Misbehaved++
	a.table.Remove(peer)
	a.log.Warn().Str("peer", peer.Short()).Err(err).Dur("ban", a.cfg.MisbehaviourBan).Msg("peer banned for a discovery protocol violation")
	if berr := a.net.Ban(peer, a.cfg.MisbehaviourBan, err.Error()); berr != nil {
		a.log.Debug().Err(berr).Msg("ban failed")
	}
}

// banned drops from the table the node, or the nodes at the IP address, that this node banned (Banned).
func (a *routingActor) banned(m *Banned, now time.Time) {
	if !m.IP.IsValid() {
		a.removeBanned(m.ID, now)
		return
	}
	for _, id := range a.table.AtIP(m.IP) {
		a.removeBanned(id, now)
	}
}

// removeBanned drops a node this node banned from the table and its replacement caches, and remembers it as gone
// (goneNodes) with the record it had: the copies of that record other nodes relay are not taken again. A banned node
// was otherwise spared as busy by every check and request (they fail locally), and stayed in the table, handed to
// other nodes in NODES replies, for the whole ban.
func (a *routingActor) removeBanned(id session.NodeID, now time.Time) {
	seq, known := a.table.RecordSeq(id)
	a.table.Remove(id)
	delete(a.busy, id)
	if known {
		a.gone.add(id, seq, now)
	}
	a.log.Debug().Str("peer", id.Short()).Msg("removed a node this node banned")
}
