package routing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Protocol is the protocol id of the discovery exchange (FindNode requests answered with Nodes).
const Protocol = "actormesh/kad/1"

// ErrNoPeers is returned by a lookup that has no node to start from.
var ErrNoPeers = errors.New("routing: no known peers to start a lookup from")

// ErrTooManyLookups is a lookup's error when Config.MaxLookups are in progress already.
var ErrTooManyLookups = errors.New("routing: too many lookups in progress")

// ErrRestarted is the error of the lookups in progress when the routing actor failed: its supervisor restarts it
// with an empty table, and the lookup may be asked again.
var ErrRestarted = errors.New("routing: routing actor restarted after a failure")

// ErrStopped is the error of the lookups in progress, or asked for, when the routing actor stops: the node is
// closing, or the actor failed too often and its supervisor gave up on it.
var ErrStopped = errors.New("routing: routing actor stopped")

// ErrNoAnswer is a lookup's error when it asked at least one node and none answered (each was down, could not be
// dialed, did not answer in time, or answered with an error: "overloaded" when this node asked over its FindNode
// rate): it learned nothing, which is not an empty neighbourhood nor a topic nobody registered on.
// The result's Queried tells how many were asked, and Wanted may still name the node looked for when its record was
// known before (LookupRequest.Want).
var ErrNoAnswer = errors.New("routing: no node answered the lookup")

// ErrLookupActorStopped is a lookup's error when the child actor running it stopped before it ended (it failed).
var ErrLookupActorStopped = errors.New("routing: lookup actor stopped")

// Network is what the routing actors need from the node that embeds them.
type Network interface {
	// ID is the local node's id.
	ID() session.NodeID
	// Request sends a typed request to a peer (dialing it when needed) and waits for the typed reply.
	Request(ctx context.Context, peer session.NodeID, protocol string, msg proto.Message) (proto.Message, error)
	// AddAddress tells the node where a peer can be dialed.
	AddAddress(id session.NodeID, addr string)
	// Ban disconnects a peer and refuses it for d; reason is logged and told to the peer.
	Ban(id session.NodeID, d time.Duration, reason string) error
	// SubscribeEvents calls fn with the node's peer events (*messages.PeerConnected, *messages.PeerDisconnected)
	// until unsubscribe is called; fn must not block.
	SubscribeEvents(fn func(proto.Message)) (unsubscribe func(), err error)
}

// ErrPeerBusy marks a failed request that says nothing against the peer's liveness: the local node had no free
// connection slot or was closing, or the peer refused it (ErrPeerRefused, which matches
// ErrPeerBusy too). The Network wraps such errors with it; a liveness check or a lookup's request that ends so does
// not count as a failure.
var ErrPeerBusy = errors.New("routing: peer busy")

// ErrPeerBanned marks a failed request to a peer this node has banned (by its id, or the IP address it is dialed
// at): a liveness check, a lookup's or an exchange's request that ends so removes the peer from the table and its
// replacement caches, as a Banned message does, and the records of it others relay are not taken again (goneNodes).
// It does not match ErrPeerBusy: a banned node was spared as busy, and stayed in the table, handed to other nodes'
// requests, for the whole ban.
var ErrPeerBanned = errors.New("routing: peer banned by this node")

// ErrPeerRefused marks a failed request that the peer itself refused over its own authenticated connection: it
// answered with an error, or closed the connection with a goodbye other than its shutdown (its slots full, a ban of
// this node, an idle close). The peer is up: a liveness check so refused resets the entry's failure counts
// (Table.MarkUp), as an answer would, without marking it answered (the peer learned nothing of this node). It
// matches ErrPeerBusy too, so a lookup's request so refused is not held against the peer either.
var ErrPeerRefused = fmt.Errorf("%w: refused by the peer", ErrPeerBusy)

// ErrRefusedBeforeHandshake marks a failed request whose connection the peer's address accepted and closed before
// the handshake ended, with no reason told (a node refuses so before any handshake work: its per-IP inbound
// throttle, a ban of this node's IP, no free inbound slot or handshake place). Likely the node, up and refusing,
// but nothing authenticates it: a liveness check or a lookup's request so refused is not held against an entry that
// has answered this node before (Entry.AnsweredAt), and is against one that never has (a made-up record naming an
// address that accepts and closes would otherwise stay in the table for good); from Config.RefusalGrace after its
// last answer it is held against that entry too.
var ErrRefusedBeforeHandshake = errors.New("routing: connection closed by the peer's address before the handshake")

// LocalWaitError is the error of a failed request that first waited Waited for this node's own resources (a free
// outbound connection slot) before its dial could start: that part of the request's time was this node's, not the
// peer's, and checkStalled counts it as the request sent that much later.
type LocalWaitError struct {
	Waited time.Duration
	Err    error
}

// Error implements error.
func (e *LocalWaitError) Error() string {
	return fmt.Sprintf("%v (after waiting %v for a local connection slot)", e.Err, e.Waited)
}

// Unwrap returns the request's error.
func (e *LocalWaitError) Unwrap() error { return e.Err }

// sentAfterLocalWait is when a request sent at sent effectively went out: after the local wait its error tells
// (LocalWaitError), if any.
func sentAfterLocalWait(sent time.Time, err error) time.Time {
	var lw *LocalWaitError
	if errors.As(err, &lw) && lw.Waited > 0 {
		return sent.Add(lw.Waited)
	}
	return sent
}

// ErrOversizedReply: a peer answered a FindNode with more than MaxReplyRecords records.
var ErrOversizedReply = errors.New("routing: NODES reply with too many records")

// MaxReplyRecords is the most records a NODES reply may carry, a limit of the protocol rather than of one node:
// a node answers with up to its own TableConfig.K (at most this, Config.Validate), so that nodes configured with different K
// interoperate (a reply over the asker's K was a violation, and got an honest peer with a larger K banned).
const MaxReplyRecords = 64

// ErrForgedSender: a peer answered with a sender record that is not its own valid record.
var ErrForgedSender = errors.New("routing: NODES reply with a forged sender record")

// InboundRequest is a request from a peer as the node delivers it to a protocol actor.
type InboundRequest interface {
	Sender() session.NodeID
	Message() proto.Message
	Reply(proto.Message) error
	ReplyError(error) error
}

// remoteAddressed is an InboundRequest that tells the address of the connection it came over (the node's does):
// topic registrations are grouped by it (IP limits), not by the address a registrant claims in its record.
type remoteAddressed interface{ RemoteAddr() string }

// remoteAddr returns the address req came from, or "" when it does not tell.
func remoteAddr(req InboundRequest) string {
	if ra, ok := req.(remoteAddressed); ok {
		return ra.RemoteAddr()
	}
	return ""
}

// LookupRequest asks the routing actor for the nodes closest to Target (an iterative lookup). Reply receives exactly
// one LookupResult. With Want set, the lookup stops as soon as that node has answered (a lookup for a node rather
// than for a neighbourhood).
//
// Reply must not be nil (a request without one is refused, and logged) and must be buffered with room for the one
// result: the actor never waits on it, and drops a result that finds no room. Nor may it be closed before the
// result came.
type LookupRequest struct {
	Target Key
	Want   *session.NodeID
	// Seeds are extra starting points besides the table's closest, such as bootnodes whose record is not known
	// yet (ID and Addr are enough).
	Seeds []Entry
	// Fallback are starting points for when neither the table nor Seeds name anybody: the node's connected peers,
	// say, which the table learns of only once an exchange with them has ended (a lookup right after a first
	// Connect failed with ErrNoPeers).
	Fallback []Entry
	// Topic marks Target as a topic's key (TopicKey): every node asked also answers with the nodes registered on
	// the topic, which the result lists (LookupResult.Registered). With Register, every node asked also registers
	// this node on the topic (it keeps the registration for its Config.TopicTTL).
	Topic, Register bool
	// Ctx, if not nil, ends the lookup when it is done (the caller gave up): its requests are cancelled and it
	// answers with what it found so far.
	Ctx   context.Context
	Reply chan<- LookupResult
}

// LookupResult is the outcome of a lookup.
type LookupResult struct {
	// Closest are the nodes closest to the target that answered, closest first (with Config.Beta, the closest
	// known: the farther ones were learned from answers without being asked).
	Closest []Entry
	// Wanted is the node of LookupRequest.Want when the lookup learned its signed record, whether or not it
	// answered (a busy node may not: its address is known all the same).
	Wanted *Entry
	// Registered are, for a LookupRequest with Topic, the nodes the answers named as registered on the topic
	// (verified records, this node's own excepted), at most MaxReplyRecords: the highest scores first, each
	// answerer of rank r by closeness to the topic's key that named a node adding 1/(r+1) (an honest registration is
	// held by the nodes near the key; registeredTally), in random order among equal scores.
	Registered []Entry
	// Rounds is the lookup's hop count, Queried the number of FindNode requests it sent.
	Rounds, Queried int
	// Duration is the lookup's wall time.
	Duration time.Duration
	// Err is why the lookup failed: ErrNoPeers, ErrTooManyLookups, ErrNoAnswer (the fields above keep what the
	// lookup knew), ErrRestarted, ErrStopped, ErrLookupActorStopped. A lookup whose caller gave up (Ctx) answers
	// with what it found so far, ErrNoAnswer if nobody had answered yet.
	Err error
}

// AddRecords asks the routing actor to verify records (e.g. from a peer store) and add them to the table.
type AddRecords struct{ Records []*messages.NodeRecord }

// Banned tells the routing actor that the node banned ID, or, with IP valid, the IP address IP: the table drops
// the node, or every node whose record's address is at IP (an address by host name is not resolved), from its
// entries and replacement caches, and the records of them that other nodes or the peer store relay are not taken
// again (goneNodes, within 30 minutes, unless newer). A node the ban lets back later comes back as any other: by
// contacting this node, by a newer record, or after those 30 minutes.
type Banned struct {
	ID session.NodeID
	IP netip.Addr
}

// SetLocalRecord gives the routing actor the node's own signed record, sent along with every exchange.
type SetLocalRecord struct{ Record *messages.NodeRecord }

// SnapshotRequest asks for a copy of the table and the actor's counters. Reply is as LookupRequest's: not nil,
// buffered with room for the one Snapshot (the actor never waits on it and drops a snapshot that finds no room), and
// not closed before it came.
type SnapshotRequest struct{ Reply chan<- Snapshot }

// Snapshot is a copy of the routing state.
type Snapshot struct {
	Entries []Entry
	Stats   Stats
	// Err is set, and the rest empty, when the snapshot could not be taken: the routing actor failed while taking
	// it (ErrRestarted, or ErrStopped when its supervisor gave up on it).
	Err error
}

// Stats counts what the routing actor did.
type Stats struct {
	// Lookups counts the lookups asked of the actor (LookupRequest with a Reply): those it ran, and those it refused
	// before sending any request (ErrNoPeers, ErrTooManyLookups, ErrStopped while it stops). LookupFailures counts
	// those of them answered with an error or with no node found, whatever ended them: the refusals, the lookups
	// ended by the actor's failure (ErrRestarted) or stop (ErrStopped) or by their child actor's stop
	// (ErrLookupActorStopped), and those no node answered.
	Lookups, LookupFailures uint64
	// RequestsServed counts the FindNode requests this node answered, Throttled those refused for the asker's rate
	// (Config.RequestRate), answered with an "overloaded" error.
	RequestsServed, Throttled uint64
	// BadRecords counts the node records the actor refused as not genuine or not usable: a bad signature, a
	// malformed record, an asker's sender record that is not the asker's own, an address this node would not dial
	// (dialableFrom). A genuine record older than one verified before (ErrStaleRecord: its node's clock went back,
	// or an old copy relayed) is not counted when it is relayed or is the sender's own (until stop 54 an answer's
	// and an asker's own counted it); another node's record sent as an asker's own is counted, stale or not. An
	// answer whose sender record is not the answerer's own (another node's, stale or not) is a protocol violation,
	// counted in Misbehaved instead, and none of its records is taken.
	BadRecords uint64
	// RejectedIP counts the genuine, dialable records the table refused for its IP diversity limits
	// (TableConfig.BucketIPLimit, TableIPLimit): a new node, or a known node's move to another IP group, whose group
	// holds as many entries as allowed (Table.Add's RejectedIP). Until stop 54 counted nowhere: a fleet on one /24
	// beyond the limits was dropped without a trace.
	RejectedIP uint64
	// Revalidations counts the liveness checks that ended (answered or not; Checks counts those started),
	// Evictions the nodes they evicted (Table.MarkFailed: MaxFailures unanswered checks in a row), from the table or
	// from a replacement cache (an entry displaced while its check was under way); until stop 58 a waiting node's
	// first failed check dropped it and counted.
	Revalidations, Evictions uint64
	// LookupEvictions counts the nodes removed, from the table or from a replacement cache, after
	// TableConfig.MaxLookupFailures requests of this node's lookups in a row went unanswered (Table.MarkLookupFailed):
	// timed out or failed to dial, in lookups that some node answered. Until stop 60 a lookup's failures were held
	// against nobody, and such a node (gone, or made up by a hostile answerer) stayed in the table, given to lookups
	// and to other nodes' requests, until the revalidation's checks reached it.
	LookupEvictions uint64
	// Exchanges counts the FindNode exchanges the actor started outside lookups: with each new outbound
	// connection's peer (to learn its record and its neighbourhood of our key) and liveness checks. Checks counts
	// the latter, NewcomerChecks those of them started for a newcomer to a full bucket, Introductions those started
	// to introduce this node to a neighbour learned second-hand (Config.IntroduceDelay); the others are the
	// periodic revalidation's.
	Exchanges, Checks, NewcomerChecks, Introductions uint64
	// ExchangesDropped counts the exchanges outside lookups not started because Config.MaxInFlight were in
	// progress: a new outbound peer's, a newcomer's liveness check (counted in neither Checks nor NewcomerChecks,
	// its CheckRate token kept), the revalidation's (whose answered-entry check stays due) or an introduction
	// (tried again at the next introduction tick). Until stop 54 such a
	// newcomer check counted in NewcomerChecks as if it had run.
	ExchangesDropped uint64
	// Misbehaved counts peers banned for a discovery protocol violation: an answer over MaxReplyRecords records
	// (ErrOversizedReply) or whose sender record is not the answerer's own (ErrForgedSender).
	Misbehaved uint64
	// TopicQueries counts the FindNode requests served for a topic's registrations, TopicRegistrations the
	// registrations (and renewals) this node accepted, TopicRegistrationsRefused those it refused (logged at debug
	// with the reason): the registrant sent no valid record of its own or one naming an address this node would not
	// dial, or the registry's limits refused it (Config.TopicRegistrations: the IP group of its connection holds an
	// eighth of the topic's registrations, or MaxTopics/4 over all topics; a record over MaxRegisteredRecordSize).
	// A refused registrant is answered as usual. Until stop 54 the refusals were counted and logged nowhere.
	TopicQueries, TopicRegistrations, TopicRegistrationsRefused uint64
	// GoneRecords counts the records of nodes the liveness checks or the lookups' failures evicted (Evictions,
	// LookupEvictions), or that this node banned (Banned), that other nodes (or the peer store) relayed again and the
	// table did not take: no newer than the one the node had, within 30 minutes of the eviction or ban, and not from
	// the node itself.
	GoneRecords uint64
}

// internal mailbox messages; from is the incarnation of the actor that sent one: a restarted actor keeps its PID
// and mailbox, and what its failed incarnation's exchanges and timer send is not for the new one.
type (
	exchangeDone struct {
		from  *routingActor
		peer  session.NodeID
		check bool // a liveness check
		reply *messages.Nodes
		err   error
		// deadline is the request's, fixed when the actor started it; sent and ended are when its goroutine sent
		// it and had its outcome (checkStalled).
		deadline, sent, ended time.Time
	}
	revalidateTick struct{ from *routingActor }
	// introduceTick starts the queued introductions (introduce).
	introduceTick struct{ from *routingActor }
	// saveDone ends a periodic save of the peer store (startSave).
	saveDone       struct{ from *routingActor }
	lookupFinished struct {
		req    *LookupRequest
		result LookupResult
		// unreached are the requests that went unanswered, held against the table (Lookup.Unreached).
		unreached []unanswered
	}
	learned struct {
		from  session.NodeID
		nodes *messages.Nodes
	}
	// misbehaved reports a peer's protocol violation found by a lookup.
	misbehaved struct {
		peer session.NodeID
		err  error
	}
)

// routingState is the part of the routing actor that outlives its restarts (its Props own it).
type routingState struct {
	// local is the node's own record (SetLocalRecord), which the node sends once.
	local *messages.NodeRecord
	// carried are the records a failed incarnation's table held, for the next one to start from.
	carried []*messages.NodeRecord
	// stats are the counters, across restarts: exported as Prometheus counters, they must never go down.
	stats Stats
	// gone remembers the nodes the liveness checks or lookups evicted, and those this node banned (goneNodes).
	gone *goneNodes
}

// routingActor owns the table. Exchanges with peers run in goroutines it owns and report back by message.
//
// Each incarnation (the first, and each one the supervisor restarts after a failure) is a new routingActor with a
// table, context and goroutines of its own; Stopping and Restarting end the incarnation's goroutines, timer and
// peer-event subscription (teardown).
type routingActor struct {
	*routingState
	cfg     Config
	net     Network
	log     zerolog.Logger
	table   *Table
	limiter *RateLimiter[session.NodeID]
	checks  *RateLimiter[bool] // one bucket: the liveness checks of full buckets
	rng     *rand.Rand
	records *verifiedRecords
	topics  *topicRegistry

	self        *actor.PID
	root        *actor.RootContext
	unsubscribe func() // ends the peer-event subscription
	timer       *time.Timer
	lastSave    time.Time
	saving      bool      // a periodic save of the peer store is in progress (startSave)
	save        saveFunc  // writes the peer store: SaveStore (tests replace it)
	answeredDue time.Time // the next check of an answered entry (revalidate)
	checking    map[session.NodeID]bool
	// introTimer, when armed, fires the next introductions (introduce).
	introTimer *time.Timer
	// introducing holds the introductions in progress (at most Config.MaxIntroductions), introLeft how many more the
	// current tick may start (continueIntroductions).
	introducing map[session.NodeID]struct{}
	introLeft   int
	// busy holds the entries whose last liveness check found them busy (ErrPeerBusy: neither alive nor failed),
	// which revalidate passes over until it has nothing else to check: without it, a busy nearest neighbour was
	// picked again at every tick, and no other entry was ever checked. At most maxDeferred of them.
	busy     map[session.NodeID]struct{}
	inFlight int
	lookups  map[string]*LookupRequest // lookup actor id -> request
	// stopping is set from Stopping on: protoactor still hands the actor user messages while its lookup children
	// stop, and those must start nothing (receiveStopping).
	stopping bool
	// handling is the lookup or snapshot request Receive is handling, answered with the failure should the actor
	// fail on it (as the relay does): neither Restarting nor Stopping would otherwise know of it, and its caller
	// waited for its context.
	handling any

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewActorProps returns the props of the routing actor of a node. cfg must pass Validate, and net is required (the
// error wraps ErrInvalidConfig otherwise).
func NewActorProps(cfg Config, net Network) (*actor.Props, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if net == nil {
		return nil, fmt.Errorf("%w: nil Network", ErrInvalidConfig)
	}
	if _, err := NewTable(net.ID(), cfg.Table); err != nil {
		return nil, err
	}
	st := &routingState{gone: newGoneNodes(maxGoneNodes, goneTTL)}
	return actor.PropsFromProducer(func() actor.Actor {
		table, _ := NewTable(net.ID(), cfg.Table)
		ctx, cancel := context.WithCancel(context.Background())
		return &routingActor{
			routingState: st, cfg: cfg, net: net, log: cfg.Logger, table: table, records: newVerifiedRecords(8192),
			topics:   newTopicRegistry(cfg.TopicTTL, cfg.MaxTopics, cfg.TopicRegistrations, max(1, cfg.TopicRegistrations/8), table.groupOf),
			limiter:  NewRateLimiter[session.NodeID](cfg.RequestRate, cfg.RequestBurst, 4096),
			checks:   NewRateLimiter[bool](cfg.CheckRate, cfg.CheckBurst, 1),
			rng:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
			checking: make(map[session.NodeID]bool), lookups: make(map[string]*LookupRequest),
			busy: make(map[session.NodeID]struct{}), introducing: make(map[session.NodeID]struct{}), save: SaveStore,
			ctx: ctx, cancel: cancel,
		}
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(0, time.Second, func(any) actor.Directive { return actor.StopDirective }))), nil
}

// Receive implements actor.Actor.
func (a *routingActor) Receive(ctx actor.Context) {
	if a.stopping {
		a.receiveStopping(ctx)
		return
	}
	now := time.Now()
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self, a.root = ctx.Self(), ctx.ActorSystem().Root
		self, root := a.self, a.root
		unsub, err := a.net.SubscribeEvents(func(ev proto.Message) {
			if pc, ok := ev.(*messages.PeerConnected); ok {
				root.Send(self, pc)
			}
		})
		if err != nil {
			a.log.Warn().Err(err).Msg("no peer events: new peers are learned by lookups only")
		}
		a.unsubscribe = unsub
		a.answeredDue = now.Add(jittered(a.rng, a.cfg.RevalidateAnsweredInterval))
		a.armRevalidation()
		for _, r := range a.carried { // a failed incarnation's table, verified again as a peer store is
			a.addRecord(r, now, false, false)
		}
		a.carried = nil
	case *actor.Stopping:
		a.failHandling(ErrStopped)
		a.teardown(ErrStopped)
		a.saveStore(time.Now())
		a.stopping = true
	case *actor.Restarting:
		// The supervisor replaces this instance after a failure; the new one starts afresh (Started). Protoactor
		// stops the lookup actors next, whose Terminated notices reach this instance, which has answered them.
		a.log.Warn().Msg("routing actor restarting after a failure")
		a.failHandling(ErrRestarted)
		a.carried = a.tableRecords()
		a.teardown(ErrRestarted)
	case *messages.PeerConnected:
		// A peer we dialed: learn its signed record and its neighbourhood of our key, unless a liveness check of
		// the peer is asking for just that already (the check dialed it, which is why it connected). A peer that
		// dialed us sends its record with its own FindNode, which serve learns; asking it back would double the
		// cost of every liveness check other nodes make of us (our own lookups keep our neighbourhood known).
		// A lookup's connections get the exchange too: a request each, but the neighbourhoods of our key they bring
		// make tables converge faster (sim discovery -n 200, seeds 8, 9 and 11: 7-8 s with it, 15-64 s without).
		if id, err := session.NodeIDFromBytes(m.PeerId); err == nil && m.Outbound && !a.checking[id] {
			a.exchange(id, a.table.SelfKey(), false)
		}
	case InboundRequest:
		a.serve(m, now)
	case *exchangeDone:
		if m.from == a {
			a.exchangeDone(m, now)
		}
	case *learned:
		a.learn(m.from, m.nodes, now, true)
	case *revalidateTick:
		if m.from != a {
			return // a failed incarnation's timer fired before it was stopped: this one has its own
		}
		a.revalidate(now)
		a.topics.Expire(now)
		if !a.saving && now.Sub(a.lastSave) >= a.cfg.SaveInterval {
			a.startSave(now) // or, while the last one is still in progress, at a later tick
		}
		a.armRevalidation()
	case *introduceTick:
		if m.from == a {
			a.introduce()
		}
	case *saveDone:
		if m.from == a {
			a.saving = false
		}
	case *LookupRequest:
		a.handling = m
		a.startLookup(ctx, m, now)
		a.handling = nil
	case *lookupFinished:
		a.finishLookup(ctx, m, now)
	case *actor.Terminated:
		a.lookupActorStopped(m.Who.Id)
	case *misbehaved:
		a.penalize(m.peer, m.err)
	case *AddRecords:
		for _, r := range m.Records {
			a.addRecord(r, now, true, false)
		}
	case *Banned:
		a.banned(m, now)
	case *SetLocalRecord:
		a.local = m.Record
	case *SnapshotRequest:
		a.handling = m
		a.snapshot(m)
		a.handling = nil
	}
}

// tableRecords returns the records of the table's entries, for the next incarnation after a failure; none when the
// table is too broken to read (the failure may have come from it).
func (a *routingActor) tableRecords() (recs []*messages.NodeRecord) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error().Interface("panic", p).Msg("the failed routing table's records are lost: the table starts empty")
			recs = nil
		}
	}()
	for _, e := range a.table.Entries() {
		if e.Record != nil {
			recs = append(recs, e.Record)
		}
	}
	return recs
}

// snapshot answers a SnapshotRequest without ever blocking the actor: a Reply with no room loses the copy.
func (a *routingActor) snapshot(req *SnapshotRequest) {
	if req.Reply == nil {
		a.log.Warn().Msg("snapshot request without a Reply channel ignored")
		return
	}
	select {
	case req.Reply <- Snapshot{Entries: a.table.Entries(), Stats: a.stats}:
	default:
		a.log.Debug().Msg("snapshot dropped: its Reply channel has no room")
	}
}

// teardown ends this incarnation's work: the peer-event subscription, the revalidation and introduction timers and the exchanges (it
// waits for their goroutines, whose requests its context cancels), and answers its lookups with err.
func (a *routingActor) teardown(err error) {
	if a.unsubscribe != nil {
		a.unsubscribe()
		a.unsubscribe = nil
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.introTimer != nil {
		a.introTimer.Stop()
	}
	a.cancel()
	a.wg.Wait()
	for _, req := range a.lookups {
		a.fail(req, err)
	}
	clear(a.lookups)
}
