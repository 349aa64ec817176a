package gossip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// inboundRPC is how the node hands the relay a message a peer sent to Protocol.
type inboundRPC interface {
	Sender() session.NodeID
	Message() proto.Message
}

// requestRPC is an inboundRPC the peer sent as a request, which the node's messages can tell.
type requestRPC interface {
	IsRequest() bool
	ReplyError(error) error
}

// errNoRequests answers a gossip RPC sent as a request.
var errNoRequests = errors.New("gossip takes no requests: send RPCs one-way")

// NewRelayProps returns the props of a node's relay actor, and the channel the actor closes when it stops for good
// (the node closes, or its supervisor gave up restarting it), for NewRelay. The props spawn one actor: they own
// what outlives its restarts, the local subscriptions among it. cfg must pass Validate.
func NewRelayProps(cfg RelayConfig, net Network) (*actor.Props, <-chan struct{}, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	// The publications are numbered from the clock, as go-libp2p's pubsub numbers them: a restarted node would
	// otherwise number them from 1 again, and with a MsgID of Origin and Seq its peers' seen caches, which still
	// held its last run's ids, dropped its first publications as duplicates.
	st := &relayState{subs: make(map[string][]*Subscription), stopped: make(chan struct{}), seq: uint64(time.Now().UnixNano())}
	return actor.PropsFromProducer(func() actor.Actor {
		return &relayActor{cfg: cfg, net: net, log: cfg.Logger, relayState: st}
	}), st.stopped, nil
}

// relayState is the part of a relay actor that outlives its restarts (its Props own it). One incarnation uses it
// at a time: a panic restarts the actor with a new Router, whose state is rebuilt from the peers, but the local
// subscriptions must carry on.
type relayState struct {
	// subs are the local subscriptions, by topic: an incarnation joins their topics when it starts.
	subs map[string][]*Subscription
	// subsWG counts the subscriptions' handler goroutines, which run across restarts until the subscription ends.
	subsWG sync.WaitGroup
	// seq numbers the node's publications (Message.Seq), across the actor's restarts; it starts from the clock.
	seq uint64
	// seen are the ids a failed incarnation's Router had seen (Router.carrySeen), for the next one's.
	seen []seenEntry
	// penalties are the peers' counts of rejected messages a failed incarnation's Router held (Router.carryPenalties),
	// for the next one's: a restart must not clear a peer's way to its ban.
	penalties []carriedPenalty
	// limiter holds each peer's message rate (PeerMessageRate), control its control budget (PeerControlRate),
	// across restarts: a restart must not refill the peers' bursts.
	limiter, control *routing.RateLimiter[session.NodeID]
	// stopped is closed when the actor stops for good.
	stopped chan struct{}
	// The figures, across restarts (counters must not go back, metrics are read from them): the relay's own
	// counters and histograms, and the counters of the failed incarnations' Routers, which the next one goes on from.
	delay, hops Histogram
	stats       RelayStats
	routerStats Stats
}

// relayActor is the shell around a Router: it turns peer RPCs, local requests, connection events and heartbeat
// ticks into Router calls and carries out the Router's outputs. Validators and subscriber handlers run on
// goroutines it owns (a handler's outlives the restarts of the actor, with its subscription); it never blocks on
// I/O.
type relayActor struct {
	*relayState
	cfg       RelayConfig
	net       Network
	log       zerolog.Logger
	router    *Router
	self      *actor.PID
	root      *actor.RootContext
	endEvents func() // ends the peer-event subscription
	timer     *time.Timer

	signed []byte                  // scratch buffer of verify
	enc    rpcEncoder              // the structs of outgoing RPCs, reused
	peers  map[session.NodeID]bool // gossip peers → our hello sent
	// echoed holds the peers whose repeated hello got our subscriptions again this heartbeat: at most one answer
	// each per heartbeat, so that a peer setting Hello on every RPC cannot make us send our topics for each. True
	// marks a hello that came after the answer: it is answered at the next heartbeat (echoAgain), not dropped, for
	// it may ask for a topic the peer joined since (Output.Hello).
	echoed map[session.NodeID]bool
	// deferred holds, per peer, the subscriptions its rate limit deferred to the next heartbeat (relaysubs.go).
	deferred map[session.NodeID]*deferredSubs
	// helloAgain holds the peers to send our hello at the next heartbeat (flushHellos): their deferred
	// subscriptions were cut, and their answer brings them whole.
	helloAgain map[session.NodeID]struct{}

	// ctx ends with the incarnation; wg counts its validators' goroutines.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// handling is the request being handled: should the actor panic on it, end answers it with ErrRelayFailed.
	handling request
	// clock, if set, is what handleRPC takes for the time (a benchmark's simulated clock); nil means time.Now.
	clock func() time.Time
}

// now is the time handleRPC takes: the clock's, or time.Now.
func (a *relayActor) now() time.Time {
	if a.clock != nil {
		return a.clock()
	}
	return time.Now()
}

// Receive implements actor.Actor.
func (a *relayActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case request:
		a.handling = m
	case *ownValidated: // the publication its validators judged is the request being handled
		a.handling = m.req
	}
	a.receive(ctx)
	a.handling = nil
}

// receive handles a peer's RPC, the message a relay mostly gets, and hands the others to receiveOther. The two are
// split for the stack: one function of every case had a 2.8 KiB frame (the inlined calls' temporaries), on top of
// which a signature check took the dispatcher goroutine 192 bytes past a 16 KiB stack, and Go kept 32 KiB for each
// of the 200 relays of the 200-node sim.
func (a *relayActor) receive(ctx actor.Context) {
	m, ok := ctx.Message().(inboundRPC)
	if !ok {
		a.receiveOther(ctx)
		return
	}
	if rq, ok := m.(requestRPC); ok && rq.IsRequest() {
		// Gossip is one-way: a peer sending its RPCs as requests (to be answered) is refused, not served.
		_ = rq.ReplyError(errNoRequests)
		return
	}
	if rpc, ok := m.Message().(*messages.GossipRPC); ok {
		a.handleRPC(m.Sender(), rpc)
	}
}

// receiveOther handles every message but a peer's RPC (see receive).
//
//go:noinline
func (a *relayActor) receiveOther(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *actor.Restarting:
		// protoactor restarts a panicking actor without Stopping: this incarnation is dropped for a new one (same
		// mailbox, same relayState), which ignores its timer's ticks and its validators' verdicts. The next one
		// starts from the ids this one has seen, so that its subscriptions do not get again what they got.
		a.seen, a.penalties = a.carryState()
		if a.router != nil {
			a.routerStats = a.router.Stats()
		}
		a.end()
	case *actor.Stopping:
		a.stop()
	case *messages.PeerConnected:
		// Only the connection's peer can have changed; a transient connection (a lookup's, a liveness check's)
		// is not a gossip peer and costs a map lookup, not a pass over every connection.
		if id, err := session.NodeIDFromBytes(m.PeerId); err == nil && a.net.IsGossipPeer(id) {
			a.greet(id)
		}
	case *messages.PeerDisconnected:
		// One of several connections to a peer may close (a duplicate, or the old one of a peer that came back):
		// the gossip state stays while another kept connection remains.
		if id, err := session.NodeIDFromBytes(m.PeerId); err == nil && a.known(id) && !a.net.IsGossipPeer(id) {
			a.removePeer(id)
		}
	case heartbeatTick:
		if m.from == a {
			a.echoAgain()
			a.applyDeferred(time.Now())
			a.reconcile()
			a.router.SetJoining(a.net.Joining())
			a.apply(a.router.Heartbeat(time.Now()))
			a.flushHellos()
			a.flushDropped(time.Now())
			a.armHeartbeat()
		}
	case *publishRequest:
		if id, err, done := a.publish(m); done {
			m.answer(id, err)
		}
	case *ownValidated:
		if m.from != a { // the incarnation that asked for the verdict failed since
			m.req.answer(MsgID{}, ErrRelayFailed)
			return
		}
		if err := m.req.ctx.Err(); err != nil {
			// The caller stopped waiting and was told its context's error: publishing now made that error a lie,
			// and the caller's retry failed with ErrDuplicate. (The validators' context ends with the caller's, so
			// their verdict is Ignore then; this covers a verdict given just before the caller's context ended.)
			m.req.answer(MsgID{}, err)
			return
		}
		m.req.answer(a.publishValidated(m.msg, m.verdict))
	case *subscribe:
		m.answer(struct{}{}, a.subscribe(m.sub))
	case *unsubscribe:
		a.unsubscribe(m.sub)
	case *validated:
		if m.from == a {
			a.apply(a.router.validated(time.Now(), m.msg.ID, m.msg, m.verdict, m.timedOut))
		}
	case *topicLookupDone:
		a.router.TopicLookupDone(time.Now(), m.topic, m.register, m.err)
	case *statsRequest:
		m.answer(a.snapshot(), nil)
	case *topicRequest:
		info := TopicInfo{Joined: len(a.subs[m.topic]) > 0, Peers: a.router.TopicPeers(m.topic)}
		info.Eager, info.Lazy = a.router.MeshPeers(m.topic)
		info.Root, info.Parent, info.Dist, info.TreeLinks = a.router.TreeLinks(m.topic)
		m.answer(info, nil)
	}
}

func (a *relayActor) start(ctx actor.Context) {
	rcfg := a.cfg.Router
	rcfg.Self = a.net.ID()
	if rcfg.Tree { // the root of a tree signs its beacons; with VerifySignatures, only signed ones are taken
		rcfg.TreeSign, rcfg.TreeVerify = a.net.Sign, a.cfg.VerifySignatures
	}
	router, err := NewRouter(rcfg, rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())))
	if err != nil {
		panic(err) // validated by NewRelayProps
	}
	a.router = router
	router.stats = a.routerStats
	router.inheritSeen(a.seen, time.Now())
	router.inheritPenalties(a.penalties, time.Now())
	a.seen, a.penalties = nil, nil
	a.self, a.root = ctx.Self(), ctx.ActorSystem().Root
	a.peers, a.echoed = make(map[session.NodeID]bool), make(map[session.NodeID]bool)
	if a.delay.Bounds == nil { // the first incarnation; a restarted one goes on with them
		a.delay, a.hops = newHistogram(delayBoundsMs()), newHistogram(hopBounds())
		a.limiter = routing.NewRateLimiter[session.NodeID](a.cfg.PeerMessageRate, a.cfg.PeerMessageBurst, a.cfg.Router.MaxPeers)
		a.control = routing.NewRateLimiter[session.NodeID](a.cfg.PeerControlRate, a.cfg.PeerControlBurst, a.cfg.Router.MaxPeers)
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	self, root := a.self, a.root
	unsub, err := a.net.SubscribeEvents(func(ev proto.Message) {
		switch ev.(type) {
		case *messages.PeerConnected, *messages.PeerDisconnected:
			root.Send(self, ev)
		}
	})
	if err != nil {
		a.log.Warn().Err(err).Msg("no peer events: gossip peers are found at heartbeats only")
	}
	a.endEvents = unsub
	a.armHeartbeat()
	now := time.Now()
	for _, t := range a.joined() { // the subscriptions of the incarnations before a restart (MaxPeerTopics at most)
		out, err := a.router.Join(now, t)
		if err != nil { // not expected: a Router of the same Config joined them
			a.log.Error().Err(err).Str("topic", t).Msg("gossip: topic not joined again after a restart")
		}
		a.apply(out)
	}
	a.reconcile()
}

// carryState returns the ids the failed incarnation's Router has seen (Router.carrySeen) and its peers' penalties
// (Router.carryPenalties), or none of either when it has no Router or that state is too broken to read: the panic
// that failed the actor may have come from it.
func (a *relayActor) carryState() ([]seenEntry, []carriedPenalty) {
	if a.router == nil {
		return nil, nil
	}
	seen := carry(a, a.router.carrySeen, "the failed relay's seen ids are lost: its subscriptions may get some messages again")
	penalties := carry(a, a.router.carryPenalties, "the failed relay's penalties are lost: its peers' counts of rejected messages start again")
	return seen, penalties
}

// carry returns what get reads of a failed incarnation's Router, or nothing, logged as lost, should it panic.
func carry[T any](a *relayActor, get func() []T, lost string) (got []T) {
	defer func() {
		if p := recover(); p != nil {
			a.log.Error().Interface("panic", p).Msg(lost)
			got = nil
		}
	}()
	return get()
}

// end ends this incarnation (the actor stops, or a panic restarts it): it answers the request it panicked on, if
// any, stops its timer and its peer events, and cancels and waits for its validators (they honour their context).
// The subscriptions stay for the next incarnation. Fields a failed start left unset are skipped.
func (a *relayActor) end() {
	if a.handling != nil {
		a.handling.fail(ErrRelayFailed)
		a.handling = nil
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	if a.endEvents != nil {
		a.endEvents()
		a.endEvents = nil
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
}

// stop ends the actor for good: the incarnation, then the subscriptions, whose handlers it waits for. The requests
// still queued, and those sent later, are never answered: stopped tells their callers.
func (a *relayActor) stop() {
	a.end()
	close(a.stopped) // before the wait: a handler may be asking the relay
	for _, subs := range a.subs {
		for _, s := range subs {
			s.stop()
		}
	}
	a.subsWG.Wait()
}

func (a *relayActor) armHeartbeat() {
	root, self, tick := a.root, a.self, heartbeatTick{from: a}
	a.timer = time.AfterFunc(a.cfg.Router.HeartbeatInterval, func() { root.Send(self, tick) })
}

// reconcile starts gossip with every kept connection not yet known (new connections, transient ones upgraded),
// and sends the hello again to a peer that an RPC carrying our subscriptions could not reach.
func (a *relayActor) reconcile() {
	for _, id := range a.net.GossipPeers() {
		a.greet(id)
	}
}

// greet starts gossip with a kept connection's peer if it is new, or sends the hello again if it did not go out.
func (a *relayActor) greet(id session.NodeID) {
	if helloSent, known := a.peers[id]; known && !helloSent || !known && a.addPeer(id) {
		a.sendHello(id)
	}
}

// echoAgain starts a heartbeat's answers to repeated hellos: a peer whose hello came after the last heartbeat's
// answer gets our subscriptions now, which is its answer of this heartbeat; the others may have one again.
func (a *relayActor) echoAgain() {
	for id, again := range a.echoed {
		if again && a.known(id) && len(a.subs) > 0 {
			a.echoed[id] = false
			a.sendRPC(id, a.subscriptions(), true)
		} else {
			delete(a.echoed, id)
		}
	}
}

// flushDropped logs what the subscriptions' full queues dropped since their last warning (Subscription.flushDropped).
func (a *relayActor) flushDropped(now time.Time) {
	for _, subs := range a.subs {
		for _, s := range subs {
			s.flushDropped(a.log, now)
		}
	}
}

// known tells whether the relay gossips with a peer.
func (a *relayActor) known(id session.NodeID) bool {
	_, ok := a.peers[id]
	return ok
}

func (a *relayActor) addPeer(id session.NodeID) bool {
	if err := a.router.AddPeer(id); err != nil {
		a.log.Debug().Err(err).Str("peer", id.Short()).Msg("gossip peer not added")
		return false
	}
	a.peers[id] = false
	return true
}

func (a *relayActor) removePeer(id session.NodeID) {
	if !a.known(id) {
		return
	}
	delete(a.peers, id)
	delete(a.echoed, id)
	delete(a.deferred, id)
	a.apply(a.router.RemovePeer(time.Now(), id))
	// The peer's rate limit stays (the limiter is bounded, stalest first): reconnecting must not refill its burst.
}

// joined lists the topics the node subscribes to, sorted.
func (a *relayActor) joined() []string {
	out := make([]string, 0, len(a.subs))
	for t := range a.subs {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// subscriptions returns an RPC listing the topics the node subscribes to.
func (a *relayActor) subscriptions() *messages.GossipRPC {
	rpc := &messages.GossipRPC{}
	for _, t := range a.joined() {
		rpc.Subscriptions = append(rpc.Subscriptions, &messages.GossipSubscription{Topic: t, Subscribe: true})
	}
	return rpc
}

func (a *relayActor) sendHello(id session.NodeID) {
	rpc := a.subscriptions()
	rpc.Hello = true
	a.peers[id] = true
	a.sendRPC(id, rpc, true)
}

// sendRPC queues rpc to a peer. When an RPC carrying subscriptions cannot be queued, the peer's hello counts as
// not sent, so that the next reconcile sends it again: a subscription is never lost silently.
func (a *relayActor) sendRPC(id session.NodeID, rpc *messages.GossipRPC, priority bool) {
	if err := a.net.SendNow(id, Protocol, rpc, priority); err != nil {
		a.stats.SendFailures++
		a.log.Debug().Err(err).Str("peer", id.Short()).Msg("gossip RPC not sent")
		if _, known := a.peers[id]; known && (rpc.Hello || len(rpc.Subscriptions) > 0) {
			a.peers[id] = false
		}
		return
	}
	a.stats.RPCsSent++
	if len(rpc.Messages) == 0 {
		a.stats.ControlRPCsSent++
	}
}

// announce tells every gossip peer that the node joined or left topic.
func (a *relayActor) announce(topic string, joined bool) {
	for id, helloSent := range a.peers {
		if helloSent {
			a.sendRPC(id, &messages.GossipRPC{Subscriptions: []*messages.GossipSubscription{{Topic: topic, Subscribe: joined}}}, true)
		}
	}
}

// publish publishes what req asks for, or, when local subscriptions to the topic have validators, starts their
// validation of it: then done is false, and the verdict (ownValidated) answers req.
func (a *relayActor) publish(req *publishRequest) (id MsgID, err error, done bool) {
	if err := a.cfg.Router.CheckTopic(req.topic); err != nil {
		return MsgID{}, err, true
	}
	if len(req.data) > a.cfg.MaxMessageSize {
		return MsgID{}, fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(req.data), a.cfg.MaxMessageSize), true
	}
	now := time.Now()
	a.seq++
	m := &Message{Topic: req.topic, Data: req.data, Origin: a.net.ID(), Seq: a.seq, OriginTime: now.UnixNano()}
	if a.cfg.SignMessages {
		m.Signature = a.net.Sign(SignedBytes(m))
	}
	validators := a.validatorsOf(m.Topic)
	if len(validators) == 0 {
		id, err := a.publishValidated(m, Accept)
		return id, err, true
	}
	// The node's own publication passes the topic's validators as a peer's message does: published unchecked, a
	// message they reject reached the node's own handlers, and its peers, which banned the node for it.
	d := a.delivery(m, now)
	// The validators' context ends with the caller's too: the caller no longer waits for their verdict.
	ctx, cancel := context.WithCancel(req.ctx)
	stop := context.AfterFunc(a.ctx, cancel)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer cancel()
		defer stop()
		verdict, _ := a.verdictOf(ctx, d, validators) // a timeout fails the Publish with ErrIgnored: no Router counter
		a.root.Send(a.self, &ownValidated{from: a, req: req, msg: m, verdict: verdict})
	}()
	return MsgID{}, nil, false
}

// publishValidated publishes the node's own message m once the topic's validators gave their verdict.
func (a *relayActor) publishValidated(m *Message, verdict Verdict) (MsgID, error) {
	switch verdict {
	case Accept:
	case Reject:
		a.stats.OwnRejected++
		return MsgID{}, ErrRejected
	default:
		a.stats.OwnRejected++
		return MsgID{}, ErrIgnored
	}
	out, err := a.router.Publish(time.Now(), m)
	if err != nil {
		return MsgID{}, err
	}
	a.apply(out)
	return m.ID, nil
}

func (a *relayActor) subscribe(s *Subscription) error {
	select {
	case <-s.done:
		s.markStopped() // cancelled before it got here: no handler goroutine
		return nil
	default:
	}
	if err := a.cfg.Router.CheckTopic(s.topic); err != nil {
		s.markStopped()
		return err
	}
	first := len(a.subs[s.topic]) == 0
	var joined Output
	if first {
		var err error
		if joined, err = a.router.Join(time.Now(), s.topic); err != nil { // past MaxPeerTopics
			s.markStopped()
			return fmt.Errorf("subscribe to %q: %w", s.topic, err)
		}
	}
	s.queue = newDeliveryQueue(a.cfg.DeliveryBuffer, a.cfg.DeliveryBufferBytes)
	a.subs[s.topic] = append(a.subs[s.topic], s)
	a.subsWG.Add(1)
	go s.run(&a.subsWG, a.log)
	if first {
		// The subscription goes out before the Join's grafts: a peer refuses (prunes) a graft for a topic it
		// does not know the grafting node to be subscribed to.
		a.announce(s.topic, true)
		a.apply(joined)
	}
	return nil
}

func (a *relayActor) unsubscribe(s *Subscription) {
	subs := a.subs[s.topic]
	i := slices.Index(subs, s)
	if i < 0 {
		return
	}
	subs = slices.Delete(subs, i, i+1)
	if len(subs) > 0 {
		a.subs[s.topic] = subs
		return
	}
	delete(a.subs, s.topic)
	a.apply(a.router.Leave(time.Now(), s.topic))
	a.announce(s.topic, false)
}

func (a *relayActor) snapshot() RelayStats {
	s := a.stats
	s.Router = a.router.Stats()
	s.Peers = len(a.peers)
	s.Topics = a.joined()
	s.Delay, s.Hops = a.delay.clone(), a.hops.clone()
	return s
}
