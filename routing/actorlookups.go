package routing

// The routing actor's lookups: starting one in a child actor, its result, and the answers when the actor fails
// or stops.

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// failHandling answers the request the actor failed on, if it was a lookup or a snapshot, with err.
func (a *routingActor) failHandling(err error) {
	switch req := a.handling.(type) {
	case *LookupRequest: // not among a.lookups: startLookup enters it there as its last step
		a.fail(req, err)
	case *SnapshotRequest:
		if req.Reply != nil {
			select {
			case req.Reply <- Snapshot{Err: err}:
			default:
			}
		}
	}
	a.handling = nil
}

// fail answers a lookup the actor took (counted in Stats.Lookups) with err; it counts in LookupFailures (result).
func (a *routingActor) fail(req *LookupRequest, err error) { a.result(req, LookupResult{Err: err}) }

// result answers a lookup the actor took (counted in Stats.Lookups) with r, and counts it in LookupFailures when it
// ended with an error or found nobody: every lookup answered so counts there, whatever ended it (its own end,
// a refusal, the actor's failure or stop, its child actor's stop). Until stop 54 those the actor's failure, stop
// or a child's stop ended counted in Lookups only.
func (a *routingActor) result(req *LookupRequest, r LookupResult) {
	if r.Err != nil || len(r.Closest) == 0 {
		a.stats.LookupFailures++
	}
	a.answer(req, r)
}

// lookupActorStopped answers, with ErrLookupActorStopped, the lookup whose child actor (of that id) stopped before
// it ended: it failed.
func (a *routingActor) lookupActorStopped(id string) {
	if req, ok := a.lookups[id]; ok {
		delete(a.lookups, id)
		a.fail(req, ErrLookupActorStopped)
	}
}

// answer gives a lookup its result without ever blocking the actor: a Reply with no room (see LookupRequest) loses
// it, and a nil one is never ready.
func (a *routingActor) answer(req *LookupRequest, r LookupResult) {
	select {
	case req.Reply <- r:
	default:
		a.log.Debug().Err(r.Err).Msg("lookup result dropped: its Reply channel is nil or has no room")
	}
}

// receiveStopping handles what reaches the actor after Stopping, while its lookup children stop: a lookup is
// refused (ErrStopped), a finished lookup's actor stopped, a snapshot given; nothing else is done (no timer armed
// again, no exchange, no request served), as the node is closing or the actor's supervisor gave up on it.
func (a *routingActor) receiveStopping(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *LookupRequest:
		a.stats.Lookups++
		a.fail(m, ErrStopped)
	case *lookupFinished:
		if sender := ctx.Sender(); sender != nil {
			ctx.Stop(sender)
		}
	case *SnapshotRequest:
		a.snapshot(m)
	}
}

func (a *routingActor) startLookup(ctx actor.Context, req *LookupRequest, now time.Time) {
	if req.Reply == nil {
		a.log.Warn().Msg("lookup request without a Reply channel refused")
		return
	}
	a.stats.Lookups++
	seeds := append(a.table.Closest(req.Target, a.cfg.Table.K), req.Seeds...)
	if len(seeds) == 0 {
		seeds = req.Fallback
	}
	if len(seeds) == 0 {
		a.fail(req, ErrNoPeers)
		return
	}
	if len(a.lookups) >= a.cfg.MaxLookups {
		a.fail(req, fmt.Errorf("%w: %d", ErrTooManyLookups, len(a.lookups)))
		return
	}
	a.table.Touched(req.Target, now)
	pid := ctx.Spawn(lookupProps(a.cfg, a.net, a.records, req, seeds, a.local))
	a.lookups[pid.Id] = req
}

func (a *routingActor) finishLookup(ctx actor.Context, m *lookupFinished, now time.Time) {
	sender := ctx.Sender()
	if sender == nil {
		return
	}
	ctx.Stop(sender)
	if _, ok := a.lookups[sender.Id]; !ok {
		return // already answered (the actor was stopping or the lookup was abandoned)
	}
	delete(a.lookups, sender.Id)
	for _, u := range m.unreached {
		a.lookupFailed(u, now)
	}
	a.result(m.req, m.result) // Reply receives exactly one result
}

// lookupFailed holds a lookup's unanswered request against its node's table entry (Table.MarkLookupFailed); an
// entry removed so is remembered as gone, as one the liveness checks evicted: the records of it that others relay are
// not taken again (a made-up node a hostile answerer names in every answer would otherwise come straight back).
func (a *routingActor) lookupFailed(u unanswered, now time.Time) {
	id := u.id
	if u.refused && a.table.AnsweredSince(id, u.when.Add(-a.cfg.RefusalGrace)) {
		return // a refusal before the handshake, of a node that answered lately (ErrRefusedBeforeHandshake)
	}
	seq, _ := a.table.RecordSeq(id)
	if !a.table.MarkLookupFailed(id, u.sent, u.when) {
		return
	}
	a.gone.add(id, seq, now)
	a.stats.LookupEvictions++
	a.log.Debug().Str("peer", id.Short()).Int("failures", a.cfg.Table.MaxLookupFailures).
		Msg("removed a node that did not answer the lookups' requests")
}
