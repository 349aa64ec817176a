package actors

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/bootstrap"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
)

// guardianReady tells Start the PIDs of the guardian's children.
type guardianReady struct {
	peers     *actor.PID
	protocols *actor.PID
	routing   *actor.PID
	relay     *actor.PID
	// relayStopped is closed when the relay stops for good (gossip.NewRelayProps).
	relayStopped <-chan struct{}
	// err: the node cannot start (a protocol of Config.Protocols could not be registered).
	err error
}

// guardianProps builds the root of the node's supervision tree: the peer manager, the listener and the protocol
// supervisor. A panicking child is restarted a bounded number of times, then stopped.
// routingDone is closed when the routing actor stops (Node.routingDone).
func (n *Node) guardianProps(ready chan<- guardianReady, routingDone chan struct{}) *actor.Props {
	strategy := actor.NewOneForOneStrategy(10, time.Minute, n.countingDecider)
	var peers, rt, relay *actor.PID // the peer manager; served protocols, unregistered when they stop
	var protocols *actor.PID
	// stopping: protoactor still delivers messages to a stopping actor until its children have stopped, and a
	// protocolsReady handled then spawned the node's actors after Start had given up, which nothing stopped.
	stopping, routingStopped := false, false
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Stopping:
			stopping = true
		case *actor.Started:
			// The protocol supervisor first: it registers Config.Protocols, then says so (protocolsReady), and
			// only then do the children that make connections start.
			var err error
			if protocols, err = ctx.SpawnNamed(n.protocolSupervisorProps(), "protocols"); err != nil {
				panic(err)
			}
		case *protocolsReady:
			switch {
			case peers != nil || stopping: // once: a restarted protocol supervisor says it again
			case m.err != nil:
				ready <- guardianReady{err: m.err}
			default:
				peers, rt, relay = n.spawnChildren(ctx, protocols, ready)
			}
		case *actor.Terminated:
			// As for a user protocol actor (protocolSupervisorProps): peers are told the protocol is unknown, and
			// the credits of the messages the actor lost come back to their connections (heldCredits).
			switch {
			case rt != nil && m.Who.Equal(rt):
				n.dropStopped(routing.Protocol, m.Who)
				if !routingStopped {
					close(routingDone)
					routingStopped = true
				}
			case relay != nil && m.Who.Equal(relay):
				n.dropStopped(gossip.Protocol, m.Who)
			case peers != nil && m.Who.Equal(peers) && !stopping: // not a Start that failed, which stops it
				// Stopped other than by Close: it failed too often. Without it the node can neither make nor
				// keep a connection, and the listener's connections would go nowhere: the node closes, and
				// says why (Err), rather than look alive.
				n.fail(errors.New("the peer manager failed too often and was stopped"))
			}
		}
	}, actor.WithSupervisor(strategy))
}

// protocolsReady tells the guardian that the protocol supervisor has registered Config.Protocols, or failed to
// register one (err): then Start fails.
type protocolsReady struct{ err error }

// spawnChildren spawns the guardian's other children once the protocols of Config.Protocols are registered, and
// tells Start their PIDs; it returns the peer manager's, the routing actor's (nil without discovery) and the
// relay's.
func (n *Node) spawnChildren(ctx actor.Context, protocols *actor.PID, ready chan<- guardianReady) (peers, rt, relay *actor.PID) {
	peers, err := ctx.SpawnNamed(n.peerManagerProps(), "peers")
	if err != nil {
		panic(err)
	}
	if !n.cfg.DisableDiscovery {
		rt = n.spawnDiscovery(ctx)
	}
	relay, relayStopped := n.spawnRelay(ctx)
	if n.listener != nil {
		if _, err := ctx.SpawnNamed(listenerProps(n, peers), "listener"); err != nil {
			panic(err)
		}
	}
	ready <- guardianReady{peers: peers, protocols: protocols, routing: rt, relay: relay, relayStopped: relayStopped}
	return peers, rt, relay
}

// routingConfig is Config.Routing as the routing actor gets it. A node whose own address is on a private network
// exempts private addresses from the table's IP limits (routing.TableConfig.ExemptPrivate): a fleet on one private
// network shares a /24, of which the limits kept 10 nodes at most in each table.
func (n *Node) routingConfig() routing.Config {
	rcfg := n.cfg.Routing
	rcfg.Logger = n.log.With().Str("component", "routing").Logger()
	rcfg.StorePath = n.cfg.peerStorePath()
	if routing.PrivateAddr(n.advertise) {
		rcfg.Table.ExemptPrivate = true
	}
	return rcfg
}

// spawnDiscovery spawns the routing actor (which serves the discovery protocol) and the bootstrapper.
func (n *Node) spawnDiscovery(ctx actor.Context) *actor.PID {
	rprops, err := routing.NewActorProps(n.routingConfig(), routingNetwork{n})
	if err != nil {
		panic(err)
	}
	rt, err := ctx.SpawnNamed(rprops.Clone(actor.WithReceiverMiddleware(releaseCredits, forgetStoppedChildren)), "routing")
	if err != nil {
		panic(err)
	}
	n.protocols.claim(routing.Protocol, rt, false, registerOptions{})
	if n.record != nil { // first in the routing actor's mailbox: the bootstrapper's first exchange carries it
		ctx.Send(rt, &routing.SetLocalRecord{Record: n.record})
	}
	bcfg := n.cfg.Bootstrap
	bcfg.Logger = n.log.With().Str("component", "bootstrap").Logger()
	if bcfg.TargetOutbound > n.cfg.MaxOutboundPeers {
		// A target past the slots is never reached: every step dialed for more, each dial refused for want of a slot.
		bcfg.Logger.Info().Int("target", bcfg.TargetOutbound).Int("max_outbound", n.cfg.MaxOutboundPeers).
			Msg("Bootstrap.TargetOutbound is over MaxOutboundPeers: the bootstrapper aims at MaxOutboundPeers")
		bcfg.TargetOutbound = n.cfg.MaxOutboundPeers
	}
	bcfg.StorePath = n.cfg.peerStorePath() // the file the routing actor saves
	n.joining.Store(bcfg.TargetOutbound > 0)
	bprops, err := bootstrap.NewActorProps(bcfg, bootstrapNetwork{n})
	if err != nil {
		panic(err)
	}
	if _, err := ctx.SpawnNamed(bprops, "bootstrap"); err != nil {
		panic(err)
	}
	return rt
}

// spawnRelay spawns the gossip relay, which serves the gossip protocol; it returns its PID and the channel closed
// when it stops for good.
func (n *Node) spawnRelay(ctx actor.Context) (*actor.PID, <-chan struct{}) {
	cfg := n.cfg.Gossip
	cfg.Logger = n.log.With().Str("component", "gossip").Logger()
	cfg.MaxMessageSize = max(1, min(cfg.MaxMessageSize, n.cfg.MaxMessageSize-gossipOverhead))
	cfg = cfg.FitRPCSize(n.cfg.MaxMessageSize - gossipEnvelope)
	if n.cfg.DisableDiscovery { // no DHT to register on or search: topic discovery would only count requests
		cfg.Router.TopicRegisterInterval, cfg.Router.TopicSearchInterval = 0, 0
	}
	props, stopped, err := gossip.NewRelayProps(cfg, gossipNetwork{n})
	if err != nil {
		panic(err)
	}
	d := n.newDispatcher()
	pid, err := ctx.SpawnNamed(props.Clone(actor.WithReceiverMiddleware(releaseCredits, stopDispatcherOnStop(d)),
		actor.WithDispatcher(d)), "gossip")
	if err != nil {
		d.stop()
		panic(err)
	}
	n.protocols.claim(gossip.Protocol, pid, false, registerOptions{})
	return pid, stopped
}

// acceptedConn hands a freshly accepted raw connection to the peer manager.
type acceptedConn struct{ conn net.Conn }

// listenerState outlives restarts of the listener actor: it owns the net.Listener and the accept goroutine.
type listenerState struct {
	n     *Node
	peers *actor.PID
	once  sync.Once
	wg    sync.WaitGroup
}

// listenerProps builds the listener actor: it runs the accept loop in a goroutine it owns, hands connections to the
// peer manager, and on stop closes the listener and waits for the loop.
func listenerProps(n *Node, peers *actor.PID) *actor.Props {
	st := &listenerState{n: n, peers: peers}
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			st.once.Do(func() {
				st.wg.Add(1)
				root := ctx.ActorSystem().Root
				go func() { defer st.wg.Done(); st.acceptLoop(root) }()
			})
		case *actor.Stopping:
			_ = n.listener.Close()
			st.wg.Wait()
		}
	})
}

func (st *listenerState) acceptLoop(root *actor.RootContext) {
	delay := 5 * time.Millisecond
	for {
		conn, err := st.n.listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			st.n.log.Warn().Err(err).Dur("retry_in", delay).Msg("accept failed")
			select {
			case <-time.After(delay):
			case <-st.n.closed:
				return
			}
			delay = min(delay*2, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		if st.n.accepted.add(conn) {
			root.Send(st.peers, &acceptedConn{conn: conn})
		}
	}
}

// registerProtocol asks the protocol supervisor to spawn a protocol actor.
type registerProtocol struct {
	protocol string
	props    *actor.Props
	opts     registerOptions
	reply    chan<- registerResult
}

type registerResult struct {
	pid *actor.PID
	err error
}

// releaseCredits is the receiver middleware of every actor that receives *Inbound or *TopicMessage: once the
// actor has processed the message (or panicked on it), the connection's inbound credit is returned (see
// Config.InboundPending), or the subscription that delivered the topic message goes on to its next. A request the
// actor panicked on without answering is answered with an application error at once (Inbound.done): its sender
// used to wait for its timeout.
func releaseCredits(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		switch m := env.Message.(type) {
		case *Inbound:
			handled := false
			defer m.done(&handled)
			next(c, env)
			handled = true
			return
		case *TopicMessage:
			defer m.processed()
		}
		next(c, env)
	}
}

// passOn is the sender middleware of the application's protocol actors: an *Inbound one passes on to another of
// them (Send, Request, Forward) is recorded by that actor's registration until the actor takes it (takePassed), so
// that it counts as lost (Stats.InboundDropped["protocol_stopped"]) if that actor stops first, a request answered
// as one its own actor never took (failStopped); one passed on to an actor that has stopped is counted so at once,
// and not sent. protoactor drops, without a trace, the messages of an actor that stops and those sent to it
// afterwards (dead letters), and such Inbounds were lost uncounted, a request's sender waiting for its timeout.
// Those passed on to another kind of actor (the application's own) are not followed.
func (n *Node) passOn(next actor.SenderFunc) actor.SenderFunc {
	return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
		if in, ok := env.Message.(*Inbound); ok && !n.passIn(c, target, in) {
			return
		}
		next(c, target, env)
	}
}

// passIn records in, passed on to target, in target's registration (passOn). It reports false, counting in lost
// and answering it if it is a request, when target is a protocol actor that has stopped, or an actor gone.
func (n *Node) passIn(c actor.SenderContext, target *actor.PID, in *Inbound) bool {
	reg := n.protocols.ofPID(target)
	switch {
	case reg != nil && reg.user:
		if reg.passIn(in) {
			return true
		}
	case reg != nil: // the node's own actors (routing, the relay) take no Inbound passed on
		return true
	default:
		if _, alive := c.ActorSystem().ProcessRegistry.Get(target); alive {
			return true
		}
	}
	n.stats.inboundDropped[dropStopped].Add(1)
	if in.IsRequest() {
		in.failUnknown(passedStoppedText(in.Protocol))
	}
	return false
}

// takePassed is the receiver middleware of the application's protocol actors that records, for an *Inbound
// another passed on to the actor, that the actor took it (passOn).
func (n *Node) takePassed(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		if in, ok := env.Message.(*Inbound); ok && in.passedOn.Load() > 0 {
			if reg := n.protocols.ofPID(c.Self()); reg != nil {
				reg.take(in)
			}
		}
		next(c, env)
	}
}

// logPanics is the innermost receiver middleware of the protocol actor of protocol: a panic is logged at error with
// its stack, then goes on to the supervisor. protoactor logged it at info without a stack, so a protocol's bug
// showed in the node's logs only once the protocol was stopped for good (an audit's finding).
func (n *Node) logPanics(protocol string) actor.ReceiverMiddleware {
	return func(next actor.ReceiverFunc) actor.ReceiverFunc {
		return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
			defer func() {
				if r := recover(); r != nil {
					n.log.Error().Str("protocol", protocol).Str("panic", fmt.Sprint(r)).Str("message", fmt.Sprintf("%T", env.Message)).
						Str("stack", string(debug.Stack())).Msg("protocol actor panicked (restarted up to Config.ProtocolRestarts times a window, then stopped)")
					panic(r)
				}
			}()
			next(c, env)
		}
	}
}

// forgetStoppedChildren is the middleware of every actor whose children come and go (the peer manager's
// connections, the routing actor's lookups, the protocol supervisor's actors). It drops protoactor's last reference
// to a stopped child: its children set (PIDSet.Remove) shortens a slice without clearing the slot it frees, and
// the PID left there caches the child's process, whose mailbox holds its context and actor: for a connection, the
// whole connection (session, ciphers, buffers, queues). Without it each parent kept up to (most children it ever
// had) - (children now) stopped ones alive: in node sim at N = 200, 2 500 of 5 900 connections were dead ones.
func forgetStoppedChildren(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		next(c, env)
		if _, ok := env.Message.(*actor.Terminated); !ok {
			return
		}
		if p, ok := c.(interface{ Children() []*actor.PID }); ok {
			children := p.Children()
			clear(children[len(children):cap(children)])
		}
	}
}

// protocolSupervisorProps builds the supervisor of user protocol actors; each gets the releaseCredits middleware.
func (n *Node) protocolSupervisorProps() *actor.Props {
	strategy := actor.NewOneForOneStrategy(n.cfg.ProtocolRestarts, n.cfg.ProtocolRestartWindow, n.countingDecider)
	names := make(map[string]string) // protocol actor id -> protocol
	stopping := false
	register := func(ctx actor.Context, protocol string, props *actor.Props, o registerOptions) (*actor.PID, error) {
		if old := n.protocols.get(protocol); old != nil {
			if _, ours := names[old.Id]; !ours {
				return nil, ErrProtocolRegistered
			}
			if _, alive := ctx.ActorSystem().ProcessRegistry.Get(old); alive {
				return nil, ErrProtocolRegistered
			}
			// Its actor has stopped (the application stopped it and waited, say), and the Terminated telling this
			// supervisor is still on its way: the protocol is unregistered now, as that Terminated would.
			delete(names, old.Id)
			n.dropStopped(protocol, old)
		}
		// The node's unbounded mailbox, whatever props asked for: flow control bounds what waits in it, and a
		// bounded one blocked the connection's reader (the peer's pings, gossip and other protocols with it) while
		// full, or dropped messages whose credits were then never given back (an audit's finding).
		pid, err := spawnProtocol(ctx, props.Clone(actor.WithMailbox(actor.Unbounded()),
			actor.WithReceiverMiddleware(n.takePassed, releaseCredits, n.logPanics(protocol)),
			actor.WithSenderMiddleware(n.passOn)))
		if err != nil {
			return nil, fmt.Errorf("register %s: %w", protocol, err)
		}
		if !n.protocols.claim(protocol, pid, true, o) {
			ctx.Stop(pid)
			return nil, ErrProtocolRegistered
		}
		names[pid.Id] = protocol
		return pid, nil
	}
	return actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			// Config.Protocols, before the node makes or takes any connection (the guardian waits for
			// protocolsReady); after a restart of this supervisor, which stopped its children, again.
			var failed error
			for _, p := range n.cfg.Protocols {
				o, err := registerOptionsOf(p.Options) // checked by Validate
				if err == nil {
					_, err = register(ctx, p.ID, p.Props, o)
				}
				if err != nil {
					n.log.Error().Err(err).Str("protocol", p.ID).Msg("a protocol of Config.Protocols could not be registered")
					failed = cmp.Or(failed, fmt.Errorf("Config.Protocols: %w", err))
				}
			}
			ctx.Send(ctx.Parent(), &protocolsReady{err: failed})
		case *actor.Stopping:
			stopping = true
		case *registerProtocol:
			if stopping {
				// protoactor still delivers messages while the supervisor waits for its children to stop: a child
				// spawned now would never be stopped, and Close would wait for it until its timeout.
				m.reply <- registerResult{err: ErrClosed}
				return
			}
			pid, err := register(ctx, m.protocol, m.props, m.opts)
			m.reply <- registerResult{pid: pid, err: err}
		case *actor.Terminated:
			if p, ok := names[m.Who.Id]; ok {
				delete(names, m.Who.Id)
				n.dropStopped(p, m.Who)
			}
		}
	}, actor.WithSupervisor(strategy), actor.WithReceiverMiddleware(forgetStoppedChildren))
}

// spawnProtocol spawns a protocol actor under the supervisor. protoactor builds the actor (the props' producer)
// and checks the props on the spawning actor's goroutine, so a producer that panics, or props with a guardian
// strategy, panicked the supervisor: its restart stopped every protocol actor (all their protocols unregistered),
// and the Register that caused it waited for its reply until Close. The panic is the spawn's error instead.
func spawnProtocol(ctx actor.Context, props *actor.Props) (pid *actor.PID, err error) {
	defer func() {
		if p := recover(); p != nil {
			pid, err = nil, fmt.Errorf("%w: spawning the protocol actor panicked: %v", ErrInvalidArgument, p)
		}
	}()
	return ctx.SpawnPrefix(props, "proto"), nil
}

// dropStopped unregisters protocol p, whose actor pid has stopped, and logs it unless the node is closing or
// undoing a Start that failed.
func (n *Node) dropStopped(p string, pid *actor.PID) {
	lost := n.protocols.drop(p, pid)
	n.stats.inboundDropped[dropStopped].Add(uint64(lost))
	select {
	case <-n.closed:
	default:
		if n.aborting.Load() {
			return
		}
		n.log.Warn().Str("protocol", p).Int("lost", lost).
			Msg("protocol actor stopped; its protocol is unregistered, its topic subscriptions cancelled, and the peers' messages it had not processed (lost) are dropped")
		n.events.Publish(&messages.ProtocolStopped{Protocol: p})
	}
}
