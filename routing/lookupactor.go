package routing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// lookupActor drives one Lookup: a short-lived child of the routing actor. Its FindNode requests run in goroutines
// it owns; it forwards every answer to its parent (which learns the records) and reports the result when done.
type lookupActor struct {
	cfg      Config
	net      Network
	req      *LookupRequest
	lookup   *Lookup
	local    *messages.NodeRecord
	records  *verifiedRecords
	started  time.Time
	finished bool
	asked    map[session.NodeID]Entry // requests issued, for a retry
	retried  map[session.NodeID]bool
	// unanswered holds the requests reported Lookup.Unreachable, by node: when each was sent and failed.
	unanswered map[session.NodeID]unanswered
	// own is the wanted node's record from its own answer (LookupRequest.Want), when it answered with a valid one.
	own *Entry
	// registered tallies the nodes the answers named as registered on the topic (LookupRequest.Topic).
	registered *registeredTally

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type lookupAnswer struct {
	from  session.NodeID
	nodes *messages.Nodes
	err   error
	// deadline is the request's; sent is when it left, ended when its outcome was known (see checkStalled).
	deadline, sent, ended time.Time
}

// unanswered is a lookup's request that went unanswered, held against its node's table entry
// (Table.MarkLookupFailed): when it was sent and when it failed.
type unanswered struct {
	id         session.NodeID
	sent, when time.Time
	// refused: the peer's address closed the connection before the handshake (ErrRefusedBeforeHandshake), held
	// only against an entry that never answered this node (routingActor.lookupFailed).
	refused bool
}

func lookupProps(cfg Config, net Network, records *verifiedRecords, req *LookupRequest, seeds []Entry, local *messages.NodeRecord) *actor.Props {
	return actor.PropsFromProducer(func() actor.Actor {
		parent := req.Ctx
		if parent == nil {
			parent = context.Background()
		}
		ctx, cancel := context.WithCancel(parent)
		return &lookupActor{
			cfg: cfg, net: net, req: req, local: local, records: records,
			asked: make(map[session.NodeID]Entry), retried: make(map[session.NodeID]bool),
			unanswered: make(map[session.NodeID]unanswered),
			registered: newRegisteredTally(req.Target),
			lookup:     NewLookup(req.Target, net.ID(), seeds, cfg.Alpha, cfg.Beta, cfg.Table.K),
			ctx:        ctx, cancel: cancel,
		}
	})
}

// Receive implements actor.Actor.
func (l *lookupActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		l.started = time.Now()
		l.step(ctx)
	case *lookupAnswer:
		if m.err == nil {
			if m.err = l.records.checkReply(m.from, m.nodes); m.err != nil {
				ctx.Send(ctx.Parent(), &misbehaved{peer: m.from, err: m.err})
			}
		}
		if errors.Is(m.err, ErrPeerBanned) { // its record came back while this node bans it: the table drops it
			ctx.Send(ctx.Parent(), &Banned{ID: m.from})
		}
		if m.err != nil && l.retry(ctx, m) {
			return
		}
		if m.err != nil {
			// A request this node ran late (its goroutines starved of CPU: checkStalled, as for the liveness checks)
			// says nothing against the peer either.
			// So does the time the request waited for a local connection slot (LocalWaitError).
			if heldAgainst(m.err, l.ctx.Err()) && !checkStalled(m.deadline, sentAfterLocalWait(m.sent, m.err), m.ended, l.cfg.RequestTimeout) {
				l.unanswered[m.from] = unanswered{id: m.from, sent: m.sent, when: time.Now(),
					refused: errors.Is(m.err, ErrRefusedBeforeHandshake)}
				l.lookup.Unreachable(m.from)
			} else {
				l.lookup.Failed(m.from)
			}
		} else {
			ctx.Send(ctx.Parent(), &learned{from: m.from, nodes: m.nodes})
			l.lookup.Succeeded(m.from, l.entries(m.nodes))
			if l.req.Topic {
				l.collectRegistered(m.from, m.nodes)
			}
			if l.req.Want != nil && m.from == *l.req.Want {
				if e, err := l.records.entry(m.nodes.GetSender()); err == nil && e.ID == m.from {
					l.own = &e // its signed record: the candidate it was asked as may have none (a connected peer)
				}
				l.finish(ctx) // the node looked for answered: no need to map its neighbourhood
				return
			}
		}
		l.step(ctx)
	case *actor.Stopping:
		l.cancel()
		l.wg.Wait()
	}
}

// entries turns the verified records of an answer into lookup candidates; forged and stale records are dropped,
// and so are those the table would refuse to dial (dialableFrom): a lookup asks every candidate, at the address
// its record names.
func (l *lookupActor) entries(nodes *messages.Nodes) []Entry {
	out := make([]Entry, 0, len(nodes.GetRecords()))
	for _, r := range nodes.GetRecords() {
		if e, err := l.records.entry(r); err == nil && dialableFrom(l.local, e.Addr) {
			out = append(out, e)
		}
	}
	return out
}

func (l *lookupActor) step(ctx actor.Context) {
	if l.finished {
		return
	}
	if err := l.ctx.Err(); err != nil { // the caller gave up (LookupRequest.Ctx): ask nobody more
		l.finish(ctx)
		return
	}
	for _, e := range l.lookup.Next() {
		l.ask(ctx, e)
	}
	if l.lookup.Done() {
		l.finish(ctx)
	}
}

// finish reports the result once. The parent stops this actor when it takes the result: a Terminated notice (a
// system message) would overtake the result in the parent's mailbox.
func (l *lookupActor) finish(ctx actor.Context) {
	if l.finished {
		return
	}
	l.finished = true
	gaveUp := l.ctx.Err() != nil // the caller's (LookupRequest.Ctx), before the cancel below
	l.cancel()                   // requests still in flight are no longer needed
	res := LookupResult{
		Closest: l.lookup.Result(), Rounds: l.lookup.Rounds(), Queried: l.lookup.Queried(),
		Duration: time.Since(l.started), Registered: l.bestRegistered(),
	}
	if l.lookup.Answered() == 0 && (res.Queried > 0 || gaveUp) {
		// Nobody answered: until stop 54 the lookup succeeded with nothing, which FindClosest and FindTopicPeers
		// passed on as an empty neighbourhood or a topic nobody registered on. A caller that gave up before the
		// first request was sent got its starting points back as if they had been found (a mutation audit).
		res.Err = fmt.Errorf("%w (%d asked)", ErrNoAnswer, res.Queried)
	}
	if l.req.Want != nil {
		// The node's own answer names its address best; a candidate taken from the node's connections (a lookup
		// from an empty table starts from them) may have none, and used to be returned with an empty address.
		if e, ok := l.lookup.Get(*l.req.Want); l.own == nil && ok && (e.Record != nil || e.Addr != "") {
			res.Wanted = &e
		} else if l.own != nil {
			res.Wanted = l.own
		}
	}
	var unreached []unanswered
	for _, id := range l.lookup.Unreached() {
		unreached = append(unreached, l.unanswered[id])
	}
	ctx.Request(ctx.Parent(), &lookupFinished{req: l.req, result: res, unreached: unreached})
}

// heldAgainst tells whether a lookup's failed request (err) says that the node asked is not there, to be held
// against its table entry (Table.MarkLookupFailed): a timeout, a failed dial, a connection lost twice (retry), a
// reply that is no answer. Not held against it: a request failed by the lookup's own end (lookupErr, the error of
// its context: it finished and cancelled the requests still in flight, its caller gave up, or its actor stops), a
// failure that proves nothing against the peer (ErrPeerBusy: no free local connection slot, this node closing, an
// error reply of the peer's), a protocol violation, for which the peer is banned and removed (penalize), and a
// request to a peer this node bans (ErrPeerBanned), which the table drops at once (Banned).
func heldAgainst(err, lookupErr error) bool {
	return err != nil && lookupErr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrPeerBusy) &&
		!errors.Is(err, ErrOversizedReply) && !errors.Is(err, ErrForgedSender) && !errors.Is(err, ErrPeerBanned)
}

// retry asks a node again once when its request failed fast, for instance because the connection closed under it
// (the peer closed it as idle just as the request left): a lookup should not lose the node it looks for to such a
// race. Timeouts and protocol violations are not retried.
func (l *lookupActor) retry(ctx actor.Context, m *lookupAnswer) bool {
	e, ok := l.asked[m.from]
	if !ok || l.retried[m.from] || errors.Is(m.err, context.DeadlineExceeded) || errors.Is(m.err, context.Canceled) ||
		errors.Is(m.err, ErrOversizedReply) || errors.Is(m.err, ErrForgedSender) || errors.Is(m.err, ErrPeerBanned) {
		return false
	}
	l.retried[m.from] = true
	l.ask(ctx, e)
	return true
}

func (l *lookupActor) ask(ctx actor.Context, e Entry) {
	l.asked[e.ID] = e
	self, root := ctx.Self(), ctx.ActorSystem().Root
	req := &messages.FindNode{Target: l.req.Target[:], Sender: l.local, Topic: l.req.Topic, Register: l.req.Topic && l.req.Register}
	l.net.AddAddress(e.ID, e.Addr)
	// The deadline is fixed here, not in the goroutine: one that starts late sends with less than RequestTimeout left,
	// which checkStalled tells.
	deadline := time.Now().Add(l.cfg.RequestTimeout)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		sent := time.Now()
		rctx, cancel := context.WithDeadline(l.ctx, deadline)
		defer cancel()
		reply, err := l.net.Request(rctx, e.ID, Protocol, req)
		nodes, ok := reply.(*messages.Nodes)
		if err == nil && !ok {
			err = fmt.Errorf("routing: peer answered %T", reply)
		}
		root.Send(self, &lookupAnswer{from: e.ID, nodes: nodes, err: err, deadline: deadline, sent: sent, ended: time.Now()})
	}()
}

// collectRegistered tallies the nodes an answer of from names as registered on the topic: verified records the
// node could dial, not its own, each node once.
func (l *lookupActor) collectRegistered(from session.NodeID, nodes *messages.Nodes) {
	self := l.net.ID()
	var regs []Entry
	for _, r := range nodes.GetRegistered() {
		e, err := l.records.entry(r)
		if err != nil || e.ID == self || !dialableFrom(l.local, e.Addr) ||
			slices.ContainsFunc(regs, func(o Entry) bool { return o.ID == e.ID }) {
			continue
		}
		regs = append(regs, e)
	}
	l.registered.add(KeyOf(from), regs)
}

// bestRegistered returns the MaxReplyRecords registered nodes named best (registeredTally.best).
func (l *lookupActor) bestRegistered() []Entry {
	return l.registered.best(MaxReplyRecords, rand.Shuffle)
}
