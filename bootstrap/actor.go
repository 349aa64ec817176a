package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// ErrInvalidConfig is wrapped by Config.Validate errors.
var ErrInvalidConfig = errors.New("bootstrap: invalid config")

// Network is what the bootstrapper needs from its node.
type Network interface {
	ID() session.NodeID
	// Connect dials a peer and waits for the connection (keep: redial it after failures).
	Connect(ctx context.Context, addr session.PeerAddr, keep bool) error
	// Connected tells whether a connection to the peer is live.
	Connected(id session.NodeID) bool
	// TransientOutbound tells whether the live connection to the peer is one the node dialed on demand and does
	// not keep (Connect with keep upgrades it).
	TransientOutbound(id session.NodeID) bool
	// OutboundCount is the number of live connections the node dialed.
	OutboundCount() int
	// FindClosest runs an iterative lookup.
	FindClosest(ctx context.Context, target routing.Key) (routing.LookupResult, error)
	// FindClosestFrom runs an iterative lookup that also starts from seeds.
	FindClosestFrom(ctx context.Context, target routing.Key, seeds []session.PeerAddr) (routing.LookupResult, error)
	// RoutingTable returns a copy of the routing table.
	RoutingTable(ctx context.Context) (routing.Snapshot, error)
	// AddRecords hands node records to the routing table (verified there).
	AddRecords(records []*messages.NodeRecord)
	// SetJoining tells the node, after each step, whether it is still making its first connections: it keeps fewer
	// outbound connections than TargetOutbound and the step dialed candidates for more. A node with nobody left
	// to dial (every node it knows connected, or the others in their dial backoff), as in a network of a few
	// nodes, is not joining. It must not block.
	SetJoining(joining bool)
}

// Config configures the bootstrapper. Start from DefaultConfig.
type Config struct {
	// Bootnodes are dialed at start, and again while the node knows nobody, or now and then while it is stranded
	// (short of TargetOutbound with nobody left to dial; see bootstrapper.rejoinGap).
	Bootnodes []session.PeerAddr
	// TargetOutbound is how many outbound connections the bootstrapper keeps (default 8).
	TargetOutbound int
	// Interval is how often it checks the outbound count and dials more (default 2s).
	Interval time.Duration
	// RefreshInterval is how often it runs a self-lookup and a random lookup to keep the table fresh (default 5m;
	// kad-dht refreshes every 10m, go-ethereum every 30m: each lookup costs handshakes with nodes not connected).
	// After the join the gap starts at Interval and doubles up to RefreshInterval, so that a young table learns
	// the nodes that joined after it quickly, until two self-lookups in a row, at least 8 Intervals apart, find the
	// same neighbourhood: then it is RefreshInterval at once. Each wait of RefreshInterval is drawn from [1/2, 3/2]
	// of it, so that nodes that joined together (all of a simulation's, or a network restarting after an outage) do
	// not refresh in step: unjittered, a 200-node `node sim` met every node's full refresh in the same few seconds
	// every 5 minutes (~28 handshakes per node in each, 3x the idle network's CPU while it lasted).
	RefreshInterval time.Duration
	// StorePath is the peer store file loaded at start (the routing actor saves it: a node gives both the same
	// file, see actors.Config.Bootstrap); empty: none.
	StorePath string
	// StepTimeout bounds one maintenance step (dials and lookups; default 20s).
	StepTimeout time.Duration
	// DialBackoffBase and DialBackoffMax space out retries of a candidate that failed (defaults 1s, 2m).
	DialBackoffBase, DialBackoffMax time.Duration
	// Logger receives the bootstrapper's logs.
	Logger zerolog.Logger
}

// DefaultConfig returns the defaults: 8 outbound peers, checked every 2s, refreshed every 5m (sooner while young).
func DefaultConfig() Config {
	return Config{
		TargetOutbound: 8, Interval: 2 * time.Second, RefreshInterval: 5 * time.Minute,
		StepTimeout:     20 * time.Second,
		DialBackoffBase: time.Second, DialBackoffMax: 2 * time.Minute, Logger: zerolog.Nop(),
	}
}

// Validate checks c.
func (c Config) Validate() error {
	if err := session.CheckPositive(
		session.Field{Name: "Interval", Value: c.Interval}, session.Field{Name: "RefreshInterval", Value: c.RefreshInterval},
		session.Field{Name: "StepTimeout", Value: c.StepTimeout}, session.Field{Name: "DialBackoffBase", Value: c.DialBackoffBase},
	); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch {
	case c.Interval < time.Millisecond: // a step every nanosecond ran back to back
		return fmt.Errorf("%w: Interval (%v) must be at least 1ms", ErrInvalidConfig, c.Interval)
	case c.TargetOutbound < 0:
		return fmt.Errorf("%w: TargetOutbound must not be negative, got %d", ErrInvalidConfig, c.TargetOutbound)
	case c.DialBackoffMax < c.DialBackoffBase:
		return fmt.Errorf("%w: DialBackoffMax (%v) must be at least DialBackoffBase (%v)", ErrInvalidConfig, c.DialBackoffMax, c.DialBackoffBase)
	}
	return nil
}

// The actor's own messages; from is the incarnation of the actor that sent one: a restarted actor keeps its PID and
// mailbox, and what its failed incarnation's step and timer send is not for the new one.
type (
	tick     struct{ from *bootstrapper }
	stepDone struct {
		from   *bootstrapper
		failed []session.NodeID
		// connected are the candidates the step connected to: their dial backoff is over.
		connected []session.NodeID
		joined    bool
		// lost is set when the routing table is empty after the step: the node knows nobody to look up from
		// (its peers' records are gone), so it joins again through its bootnodes (and peer store) at the next step.
		lost bool
		// stranded is set when the node, joined already, is short of its outbound target and its table had nobody
		// left to dial (every node it knows connected, or in its dial backoff): see bootstrapper.rejoinGap.
		stranded bool
		// progressed is set when the node keeps its outbound target or the step dialed a candidate: it is not
		// stranded, and its rejoin schedule starts over.
		progressed bool
		// neighbours are the closest nodes the step's self-lookup found (nil: it ran none, or it failed).
		neighbours []session.NodeID
	}
)

// bootstrapper is the bootstrap actor. One maintenance step at a time runs in a goroutine it owns; the actor keeps
// the schedule, the dial backoff of candidates and the last known records for the final save. Each incarnation (the
// first, and each one the supervisor restarts after a failure) is a new bootstrapper with a context and step of its
// own; Stopping and Restarting end its timer and step.
type bootstrapper struct {
	cfg Config
	net Network
	log zerolog.Logger
	rng *rand.Rand

	self    *actor.PID
	sys     *actor.ActorSystem
	timer   *time.Timer
	busy    bool
	joined  bool
	refresh *refreshSchedule
	backoff map[session.NodeID]*candidateBackoff
	// quiet holds the bootnodes whose failure the join logged at warn: it goes on at debug until the bootnode
	// answers (a node that cannot join retries at every step, and logged each bootnode every 2 s for good). The
	// steps own it: one runs at a time.
	quiet map[session.NodeID]bool
	// storeLogged is set once a join logged the peer store's load (or its failure) at info or warn; the joins
	// retried after it log it at debug. Like quiet, only the step running uses it.
	storeLogged bool
	// rejoinGap and rejoinAt space out the joins again through the bootnodes of a stranded node: a few nodes
	// that know only each other (they joined while the rest was out of reach, or lost it) are an island that their
	// own lookups, which only ask one another, never leave. The first rejoin comes a step interval after the node
	// was first found stranded, and the gap doubles up to RefreshInterval while it stays stranded (in a network
	// smaller than the target, for ever): a lookup from the bootnodes finds the rest of the network, if it is there.
	rejoinGap time.Duration
	rejoinAt  time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type candidateBackoff struct {
	b     *session.Backoff
	until time.Time
}

// NewActorProps returns the bootstrap actor's props; cfg must pass Validate, and net is required (the error wraps
// ErrInvalidConfig otherwise).
func NewActorProps(cfg Config, net Network) (*actor.Props, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if net == nil {
		return nil, fmt.Errorf("%w: nil Network", ErrInvalidConfig)
	}
	return actor.PropsFromProducer(func() actor.Actor {
		ctx, cancel := context.WithCancel(context.Background())
		b := &bootstrapper{
			cfg: cfg, net: net, log: cfg.Logger, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
			backoff: make(map[session.NodeID]*candidateBackoff), quiet: make(map[session.NodeID]bool), ctx: ctx, cancel: cancel,
		}
		b.refresh = newRefreshSchedule(cfg.Interval, cfg.RefreshInterval, b.jittered)
		return b
	}), nil
}

// jittered returns a wait drawn uniformly from [d/2, 3d/2); a d over math.MaxInt64/2 (146 years: never) counts as
// that, so that the sum cannot overflow into a negative wait.
func (b *bootstrapper) jittered(d time.Duration) time.Duration {
	d = min(d, math.MaxInt64/2)
	return d/2 + time.Duration(b.rng.Int64N(int64(d)))
}

// Receive implements actor.Actor.
func (b *bootstrapper) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		b.self, b.sys = ctx.Self(), ctx.ActorSystem()
		b.startStep()
	case *tick:
		if m.from != b {
			return // a failed incarnation's timer fired before it was stopped: this one has its own
		}
		b.timer = nil
		b.startStep()
	case *stepDone:
		if m.from != b {
			return // a failed incarnation's step: this one runs its own
		}
		b.busy = false
		b.joined = (b.joined || m.joined) && !m.lost
		now := time.Now()
		b.strandedStep(m, now)
		if m.neighbours != nil {
			b.refresh.neighbourhood(m.neighbours)
		}
		for _, id := range m.failed {
			cb, ok := b.backoff[id]
			if !ok {
				cb = &candidateBackoff{b: session.NewBackoff(b.cfg.DialBackoffBase, b.cfg.DialBackoffMax, 0, b.rng)}
				b.backoff[id] = cb
			}
			d, _ := cb.b.Next()
			// Each term at most MaxInt64/2 (146 years: never): their sum overflowed into the past for a
			// DialBackoffBase and DialBackoffMax meaning "never retry", and the candidate was dialed again at once.
			cb.until = now.Add(min(b.cfg.DialBackoffBase, math.MaxInt64/2) + min(d, math.MaxInt64/2))
		}
		for _, id := range m.connected { // reached: a later failure starts its backoff afresh
			delete(b.backoff, id)
		}
		for id, cb := range b.backoff { // bounded: forget candidates whose backoff is long over
			if now.Sub(cb.until) > b.cfg.DialBackoffMax {
				delete(b.backoff, id)
			}
		}
		self, sys, t := b.self, b.sys, &tick{from: b}
		b.timer = time.AfterFunc(b.cfg.Interval, func() { sys.Root.Send(self, t) })
	case *actor.Stopping:
		b.teardown()
	case *actor.Restarting:
		// The supervisor replaces this instance after a failure; the new one starts afresh (Started).
		b.log.Warn().Msg("bootstrapper restarting after a failure")
		b.teardown()
	}
}

// strandedStep counts a step against the rejoin schedule (rejoinGap): when a rejoin is due, the node is no longer
// joined, and the next step joins again through its bootnodes. A join's own step leaves the schedule as it is.
func (b *bootstrapper) strandedStep(m *stepDone, now time.Time) {
	switch {
	case m.progressed || len(b.cfg.Bootnodes) == 0:
		b.rejoinGap = 0
	case !m.stranded:
	case b.rejoinGap == 0:
		b.rejoinGap, b.rejoinAt = b.cfg.Interval, now.Add(b.cfg.Interval)
	case !now.Before(b.rejoinAt):
		b.log.Debug().Dur("next_in", min(2*b.rejoinGap, b.cfg.RefreshInterval)).
			Msg("short of outbound connections with nobody left to dial: joining again through the bootnodes")
		b.joined = false
		b.rejoinGap = min(2*b.rejoinGap, b.cfg.RefreshInterval)
		b.rejoinAt = now.Add(b.rejoinGap)
	}
}

// teardown ends this incarnation's work: the timer, and the step in progress (its context cancelled, its goroutine
// waited for).
func (b *bootstrapper) teardown() {
	if b.timer != nil {
		b.timer.Stop()
	}
	b.cancel()
	b.wg.Wait()
}

// startStep launches one maintenance step unless one is running.
func (b *bootstrapper) startStep() {
	if b.busy || b.ctx.Err() != nil {
		return
	}
	b.busy = true
	now := time.Now()
	plan := stepPlan{
		join:   !b.joined,
		skip:   make(map[session.NodeID]bool),
		random: randomKey(b.rng),
		seed:   b.rng.Uint64(),
	}
	for id, cb := range b.backoff {
		if now.Before(cb.until) {
			plan.skip[id] = true
		}
	}
	switch {
	case plan.join:
		// A join runs lookups of its own, and the early refreshes count from it, whether it is the first or one
		// after the node was lost or stranded. Counted as refreshes, the failed joins of a node whose bootnodes were
		// out of reach for minutes used up its early gaps: its first refresh came minutes after the join.
		b.refresh.restart(now)
	case b.refresh.due(now):
		plan.refresh = true
		plan.randomLookup = b.refresh.start(now)
	}
	self, sys, from, log := b.self, b.sys, b, b.log
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		done := &stepDone{}
		// A panic in the step (a bug in a Network call it makes) fails that step only: outside the actor's
		// Receive, no supervisor would catch it, and it would end the process.
		defer func() {
			if p := recover(); p != nil {
				log.Error().Interface("panic", p).Msg("bootstrap step failed")
				done = &stepDone{}
			}
			done.from = from
			sys.Root.Send(self, done)
		}()
		ctx, cancel := context.WithTimeout(b.ctx, b.cfg.StepTimeout)
		defer cancel()
		done = b.run(ctx, plan)
	}()
}

// stepPlan is what one step should do, decided by the actor; run executes it off the actor.
type stepPlan struct {
	join, refresh bool
	randomLookup  bool // with the self-lookup, one of a random key (at the join and at full refreshes)
	skip          map[session.NodeID]bool
	random        routing.Key
	seed          uint64 // for the step's own random choices: the actor's rng stays the actor's
}

func randomKey(rng *rand.Rand) routing.Key {
	var k routing.Key
	for i := range k {
		k[i] = byte(rng.Uint32())
	}
	return k
}

// run performs a step: join (store, bootnodes, self-lookup), refresh lookups, outbound top-up, store save.
func (b *bootstrapper) run(ctx context.Context, p stepPlan) *stepDone {
	done := &stepDone{}
	lookups := p.refresh
	if p.join {
		var seeded bool
		done.joined, seeded = b.join(ctx)
		// The join's self-lookup starts from the bootnodes themselves; without any, from the stored records,
		// which reach the table asynchronously.
		lookups = seeded && (len(b.cfg.Bootnodes) > 0 || b.awaitEntries(ctx))
		done.joined = done.joined && (lookups || !seeded)
	}
	if lookups {
		self := routing.KeyOf(b.net.ID())
		targets := []routing.Key{self}
		if p.join || p.randomLookup {
			targets = append(targets, p.random)
		}
		for _, target := range targets {
			var res routing.LookupResult
			var err error
			if p.join && target == self {
				res, err = b.net.FindClosestFrom(ctx, target, b.cfg.Bootnodes)
			} else {
				res, err = b.net.FindClosest(ctx, target)
			}
			if err != nil {
				b.log.Debug().Err(err).Msg("refresh lookup failed")
				if p.join && target == self {
					done.joined = false // retried at the next step
				}
				continue
			}
			b.log.Debug().Int("found", len(res.Closest)).Int("rounds", res.Rounds).Msg("refresh lookup")
			if target == self && len(res.Closest) > 0 {
				done.neighbours = make([]session.NodeID, len(res.Closest))
				for i, e := range res.Closest {
					done.neighbours[i] = e.ID
				}
			}
			if p.join && target == self && len(res.Closest) == 0 {
				// The bootnodes answered with nobody (a lookup none of them answered fails with routing.ErrNoAnswer,
				// above): not joined yet.
				done.joined = false
			}
		}
	}
	if b.cfg.TargetOutbound > 0 && b.net.OutboundCount() >= b.cfg.TargetOutbound {
		b.net.SetJoining(false)
		done.progressed = true
		return done // nothing to top up, and a node with outbound connections is not lost: no copy of the table
	}
	snap, err := b.net.RoutingTable(ctx)
	if err != nil {
		b.net.SetJoining(false) // nothing to dial from: a node left "joining" would hold its topic discovery for good
		return done
	}
	if len(snap.Entries) == 0 && len(b.cfg.Bootnodes) > 0 {
		done.lost = true
	}
	var dialed int
	done.failed, done.connected, dialed = b.topUp(ctx, snap.Entries, p.skip, rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15)))
	short := b.net.OutboundCount() < b.cfg.TargetOutbound
	b.net.SetJoining(dialed > 0 && short)
	done.stranded, done.progressed = !p.join && dialed == 0 && short, dialed > 0 || !short
	return done
}

// awaitEntries polls the routing table until it holds an entry (true) or the join wait or ctx ends (false).
func (b *bootstrapper) awaitEntries(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if snap, err := b.net.RoutingTable(ctx); err == nil && len(snap.Entries) > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-poll.C:
		}
	}
}

// joinWait bounds how long a join waits for its first routing table entry.
const joinWait = 5 * time.Second

// join loads the peer store into the table and dials the bootnodes. joined: the node has a way in (a bootnode
// answered, an outbound peer is up, or it has no bootnode to wait for); seeded: it has peers to look up from.
func (b *bootstrapper) join(ctx context.Context) (joined, seeded bool) {
	if b.cfg.StorePath != "" {
		// The join is retried at every step until it succeeds: the store's outcome is logged at warn or info the
		// first time, then at debug.
		recs, err := routing.LoadStore(b.cfg.StorePath)
		if err != nil {
			ev := b.log.Warn()
			if b.storeLogged {
				ev = b.log.Debug()
			}
			ev.Err(err).Msg("ignoring the peer store")
		} else if len(recs) > 0 {
			b.net.AddRecords(recs)
			seeded = true
			ev := b.log.Info()
			if b.storeLogged {
				ev = b.log.Debug()
			}
			ev.Int("records", len(recs)).Msg("peer store loaded")
		}
		b.storeLogged = true
	}
	for _, bn := range b.cfg.Bootnodes {
		if err := b.net.Connect(ctx, bn, false); err != nil {
			ev := b.log.Warn()
			if b.quiet[bn.ID] {
				ev = b.log.Debug()
			}
			b.quiet[bn.ID] = true
			ev.Err(err).Str("bootnode", bn.String()).Msg("bootnode unreachable (retried at each step; logged at debug until it answers)")
			continue
		}
		delete(b.quiet, bn.ID)
		joined, seeded = true, true
	}
	if b.net.OutboundCount() > 0 {
		joined, seeded = true, true
	}
	return joined || len(b.cfg.Bootnodes) == 0, seeded
}

// topUp dials table entries until the node has TargetOutbound outbound connections; it returns the candidates that
// failed and those it connected to, and the number of entries it dialed. A dial the step's own end cut off is no
// failure of its candidate's: it is neither, and the step dials no more.
func (b *bootstrapper) topUp(ctx context.Context, entries []routing.Entry, skip map[session.NodeID]bool, rng *rand.Rand) (failed, connected []session.NodeID, dialed int) {
	need := b.cfg.TargetOutbound - b.net.OutboundCount()
	if need <= 0 {
		return nil, nil, 0
	}
	rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	for _, e := range entries {
		if need <= 0 || ctx.Err() != nil {
			break
		}
		if skip[e.ID] || (b.net.Connected(e.ID) && !b.net.TransientOutbound(e.ID)) {
			continue // a transient outbound connection is upgraded to kept below, without a new dial
		}
		dialed++
		if err := b.net.Connect(ctx, session.PeerAddr{ID: e.ID, Addr: e.Addr}, true); err != nil {
			if ctx.Err() != nil {
				break // the step's time ran out, or the bootstrapper stops
			}
			b.log.Debug().Err(err).Str("peer", e.ID.Short()).Msg("outbound candidate failed")
			failed = append(failed, e.ID)
			continue
		}
		connected = append(connected, e.ID)
		need--
	}
	return failed, connected, dialed
}
