package actors

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// connectByID asks the peer manager to connect to a peer and keep it, looking its address up when the address book
// does not have it (gossip's tree shortcuts).
type connectByID struct{ id session.NodeID }

// disconnectRequest asks the peer manager to drop a peer and stop redialing it.
type disconnectRequest struct{ id session.NodeID }

// handshakeDone reports a finished handshake goroutine.
type handshakeDone struct {
	raw      net.Conn
	sc       *session.Conn
	err      error
	outbound bool
	addr     session.PeerAddr // dialed address (outbound only)
	// dialFailed is set when the connection could not be opened (no handshake was tried).
	dialFailed bool
	// from is the peer manager instance that ran the handshake: a restarted manager ignores its predecessor's
	// reports, whose connections the predecessor closed (see stop).
	from *peerManager
}

// slotDue fires when dials waiting for an outbound slot should be retried.
type slotDue struct{ from *peerManager }

// slotWaiter is a dial waiting for an outbound slot until its deadline.
type slotWaiter struct {
	req      *dialRequest
	deadline time.Time
}

// maxSlotWaiters bounds the dials waiting for an outbound slot; slotRetry is how often they retry.
const (
	maxSlotWaiters = 256
	slotRetry      = 10 * time.Millisecond
)

// sweepDue fires when idle transient connections are due to be closed.
type sweepDue struct{ from *peerManager }

// connDone is sent by a connection's goroutines to its actor when both have exited.
type connDone struct{}

type connEntry struct {
	pid *actor.PID
	pc  *peerConn
	// awaitsPeer is set on the losing connection of a simultaneous dial whose close waits for the peer's goodbye
	// at length (peerConn.closeDuplicate; see awaitingPeer).
	awaitsPeer bool
}

// awaitingPeer tells whether a connection to id closed as the losing one of a simultaneous dial still waits for
// the peer's goodbye at length. One waits so at a time per peer: an honest pair makes one such connection, and a
// peer dialing in again and again while the node's own connection to it wins the tie-break would hold a long wait
// for each (not registered, they hold no slot, and only the inbound rate limits them); the others wait
// closeFlushTimeout, as any close.
func (m *peerManager) awaitingPeer(id session.NodeID) bool {
	for _, e := range m.byActor {
		if e.awaitsPeer && e.pc.id == id {
			return true
		}
	}
	return false
}

// peerManager owns the connection actors (one child per live connection), the handshakes in progress and the
// redial policy for wanted peers. All its state is touched only from Receive; handshakes and dials run in
// goroutines it owns and report back through its mailbox.
type peerManager struct {
	n       *Node
	self    *actor.PID
	root    *actor.RootContext
	conns   map[session.NodeID]*connEntry
	byActor map[string]*connEntry
	wanted  map[session.NodeID]*wantedPeer
	// held maps the peers the application disconnected to the end of their hold (disconnectHold; its Props own it,
	// like the bufs: a restart keeps the holds); undial holds those it disconnected while a dial to them was in
	// progress, whose connection is then closed at once.
	held    map[session.NodeID]time.Time
	undial  map[session.NodeID]struct{}
	dialing map[session.NodeID][]chan<- error
	pending int
	nextID  uint64
	// handling is the message Receive is handling (settleFailed).
	handling any
	armed    uint64 // counts the redial timers armed (wantedPeer.armed)
	// connProps spawns every connection actor, with the connection in spawning (see newConnActor).
	connProps *actor.Props
	spawning  *peerConn
	// lookingUp is set while connectByID's lookup runs; discovering holds the topics whose lookup runs
	// (discoverTopic).
	lookingUp   bool
	discovering map[string]struct{}
	// topicsWaiting holds the topic discoveries waiting for a lookup to end (discoverTopic); keepOnce the peers
	// being dialed to keep without redialing them (dialRequest.once), at most maxKeepOnce.
	topicsWaiting map[string]*discoverTopic
	keepOnce      map[session.NodeID]struct{}
	sweep         *time.Timer // closes idle transient connections
	sweepAt       time.Time   // when sweep fires
	// slotWait holds dials waiting for an outbound slot (FIFO, bounded); slotTimer retries them.
	slotWait []slotWaiter
	// afterClose holds the application's dials of peers whose connection is closing (a Disconnect, a goodbye, an
	// idle sweep), dialed again once it has ended (connClosed); afterCloseN counts them, at most maxSlotWaiters.
	afterClose  map[session.NodeID][]*dialRequest
	afterCloseN int
	slotTimer   *time.Timer
	// inbound throttles inbound connections per IP (the ban list is the node's: Node.bans).
	inbound *routing.RateLimiter[netip.Addr]
	// pendingIn counts the inbound handshakes in progress by remote host (hostKey; MaxInboundPerIP).
	pendingIn map[netip.Addr]int
	// inHandshakes holds the inbound handshakes in progress by their connection; evicting counts those closed to
	// make room whose report has not come yet (evictPendingInbound).
	inHandshakes map[net.Conn]*inHandshake
	evicting     int
	// evictSeed keys the hash that picks the network groups inbound eviction protects (chooseEviction).
	evictSeed maphash.Seed
	// bufs lends the node's connections their large read and write buffers; its Props own it (it outlives restarts).
	bufs *session.BufferPool
	// rewant carries the wanted peers from an instance that restarts to the next (its Props own it, and held).
	rewant *[]rewanted

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// parked holds handshaken connections on their way through the mailbox, so that stopping can say goodbye on
	// the ones whose handshakeDone never gets processed (the peer may have registered them already).
	parkedMu sync.Mutex
	parked   map[*session.Conn]struct{}
}

func (n *Node) peerManagerProps() *actor.Props {
	// A connection actor that panics is stopped, never restarted: its socket is gone. The peer manager redials.
	stopChildren := actor.NewOneForOneStrategy(0, time.Second, func(any) actor.Directive { return actor.StopDirective })
	bufs := n.cfg.Buffers
	if bufs == nil {
		bufs = session.NewBufferPool()
	}
	rewant, held := new([]rewanted), make(map[session.NodeID]time.Time)
	return actor.PropsFromProducer(func() actor.Actor {
		ctx, cancel := context.WithCancel(context.Background())
		m := &peerManager{
			n: n, conns: make(map[session.NodeID]*connEntry), byActor: make(map[string]*connEntry),
			wanted: make(map[session.NodeID]*wantedPeer), dialing: make(map[session.NodeID][]chan<- error),
			ctx: ctx, cancel: cancel, parked: make(map[*session.Conn]struct{}), pendingIn: make(map[netip.Addr]int),
			inHandshakes: make(map[net.Conn]*inHandshake),
			held:         held, undial: make(map[session.NodeID]struct{}),
			evictSeed: maphash.MakeSeed(),
			bufs:      bufs,
			rewant:    rewant,
			inbound:   routing.NewRateLimiter[netip.Addr](n.cfg.InboundPerIPRate, n.cfg.InboundPerIPBurst, inboundThrottleIPs),
		}
		m.connProps = actor.PropsFromProducer(m.newConnActor)
		return m
	}, actor.WithSupervisor(stopChildren), actor.WithReceiverMiddleware(forgetStoppedChildren))
}

// newConnActor produces the actor of the connection register is spawning. One Props serves every connection (a
// Props each was ~400 bytes per connection): SpawnPrefix calls the producer before it returns, and a connection
// actor is stopped, never restarted (stopChildren), so the producer runs once per connection, inside register.
func (m *peerManager) newConnActor() actor.Actor { return &connActor{pc: m.spawning} }

// Receive implements actor.Actor. It records the message it handles: should it panic on it, the Restarting that
// follows settles it (settleFailed).
func (m *peerManager) Receive(ctx actor.Context) {
	failed := m.handling // set when the last call panicked: protoactor hands this instance Restarting next
	m.handling = ctx.Message()
	m.receive(ctx, failed)
	m.handling = nil
}

func (m *peerManager) receive(ctx actor.Context, failed any) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		m.self, m.root = ctx.Self(), ctx.ActorSystem().Root
		m.n.stats.pendingHandshakes.Store(0) // a restarted instance starts with none (the last one's were stopped)
		for _, p := range m.n.cfg.Peers {
			m.dial(ctx, &dialRequest{addr: p, keep: true})
		}
		for _, w := range *m.rewant { // after a restart
			m.dial(ctx, &dialRequest{addr: w.addr, keep: true, auto: w.auto})
		}
		*m.rewant = nil
		m.armSweep(true)
	case *slotDue:
		if msg.from == m {
			m.slotTimer = nil
			m.retrySlotWaiters(ctx)
		}
	case *sweepDue:
		if msg.from == m {
			m.armSweep(m.sweepTransient())
		}
	case *acceptedConn:
		if m.n.accepted.take(msg.conn) {
			m.accept(msg.conn)
		}
	case *dialRequest:
		m.dial(ctx, msg)
	case *connectByID:
		m.connectByID(ctx, msg.id)
	case *discoverTopic:
		m.discoverTopic(msg)
	case *topicFound:
		if msg.from == m {
			m.topicFound(ctx, msg)
		}
	case *releasePeer:
		m.release(msg.id)
	case *keepPeer:
		m.keepAgain(msg.id)
	case *lookedUp:
		if msg.from != m { // the lookup of the instance before a restart
			return
		}
		m.lookingUp = false
		if msg.err != nil {
			m.n.log.Debug().Err(msg.err).Msg("lookup for a connection to keep failed")
		} else if m.ctx.Err() == nil {
			m.dial(ctx, &dialRequest{addr: msg.addr, keep: true, auto: true})
		}
	case *handshakeDone:
		if msg.from == m {
			m.handshakeDone(ctx, msg)
		}
	case *redialDue:
		if w, ok := m.wanted[msg.id]; ok && msg.from == m && msg.armed == w.armed && w.timer != nil {
			w.timer = nil
			m.dial(ctx, &dialRequest{addr: w.addr, keep: true, auto: w.auto})
		}
	case *banRequest:
		m.ban(msg)
	case *disconnectRequest:
		m.disconnect(msg.id)
	case *messages.ConnClosed:
		if e, ok := m.byActor[ctx.Sender().GetId()]; ok {
			m.connClosed(ctx, e)
		}
	case *actor.Terminated:
		if e, ok := m.byActor[msg.Who.Id]; ok {
			m.connClosed(ctx, e)
		}
	case *actor.Stopping:
		m.stop(ErrClosed, "node shutting down")
	case *actor.Restarting:
		// protoactor restarts a panicking actor without Stopping: this instance is dropped for a new one, which
		// will not know its handshakes, timers and waiters, and ignores its reports. It then stops the
		// connection actors (their Terminated still come here). The wanted peers are dialed again, the node's own
		// choices (wantedPeer.auto) still as its own.
		m.settleFailed(failed)
		for _, w := range m.wanted {
			*m.rewant = append(*m.rewant, rewanted{addr: w.addr, auto: w.auto})
		}
		m.stop(errRestarted, "peer manager restarting")
	}
}

// stop ends this instance of the peer manager (the node stops, or a panic restarts it): it cancels the handshakes
// in progress and waits for its goroutines, says goodbye on the connections handshaken but not registered yet,
// stops its timers and fails the dials waiting with err. It blocks, within bounds: cancelling interrupts the
// handshakes, and a goodbye has a write deadline.
func (m *peerManager) stop(err error, detail string) {
	m.cancel()
	if m.sweep != nil {
		m.sweep.Stop()
	}
	if m.slotTimer != nil {
		m.slotTimer.Stop()
	}
	for _, w := range m.slotWait {
		w.req.slotWaited.stop(time.Now())
		reply(w.req.reply, err)
	}
	m.slotWait = nil
	for _, reqs := range m.afterClose {
		for _, req := range reqs {
			reply(req.reply, err)
		}
	}
	m.afterClose, m.afterCloseN = nil, 0
	for _, w := range m.wanted {
		w.stopTimer()
	}
	m.wg.Wait() // the handshakes in progress end (cancelling m.ctx interrupted them) or park their connection
	m.parkedMu.Lock()
	for sc := range m.parked { // handshaken, but their reports will not be read: the peer may have registered them
		m.closeWithNotice(sc, messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN, detail)
	}
	clear(m.parked)
	m.parkedMu.Unlock()
	m.wg.Wait()
	for _, waiters := range m.dialing {
		for _, w := range waiters {
			w <- err
		}
	}
	m.dialing = nil
	// The handshakes have ended and their reports will not be read: the gauge kept its last value after Close (a
	// chaos audit's finding).
	m.pending, m.evicting = 0, 0
	clear(m.inHandshakes)
	m.n.stats.pendingHandshakes.Store(0)
}

func (m *peerManager) count(outbound bool) int {
	c := 0
	for _, e := range m.conns {
		if e.pc.outbound == outbound {
			c++
		}
	}
	return c
}

func (m *peerManager) handshakeDone(ctx actor.Context, msg *handshakeDone) {
	m.pending--
	m.n.stats.pendingHandshakes.Store(int64(m.pending))
	evicted := false
	if !msg.outbound {
		m.unpendInbound(msg.raw.RemoteAddr())
		if h := m.inHandshakes[msg.raw]; h != nil {
			if evicted = h.evicted; evicted {
				m.evicting--
			}
			delete(m.inHandshakes, msg.raw)
		}
	}
	if msg.sc != nil {
		m.parkedMu.Lock()
		_, parked := m.parked[msg.sc]
		delete(m.parked, msg.sc)
		m.parkedMu.Unlock()
		if !parked { // stopping said goodbye on it already
			return
		}
		if m.ctx.Err() != nil { // stopping: the report came after the stop began
			m.closeWithNotice(msg.sc, messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN, "node shutting down")
			return
		}
		if evicted { // it ended as it was closed to make room: its socket is closed
			_ = msg.sc.Close()
			m.n.stats.handshakeFailures.inc("evicted")
			return
		}
	}
	log := m.n.log.With().Bool("outbound", msg.outbound).Logger()
	if msg.err != nil {
		switch {
		case msg.dialFailed:
			m.n.stats.handshakeFailures.inc("dial")
		case evicted:
			m.n.stats.handshakeFailures.inc("evicted")
		case m.ctx.Err() == nil:
			m.n.stats.handshakeFailures.inc(handshakeFailureReason(msg.err))
		}
		if msg.raw != nil {
			_ = msg.raw.Close()
		}
		if msg.outbound {
			// At debug: a peer that stays down is redialed (a bootnode at every step of the bootstrapper, a kept
			// peer with backoff), and its every failure at info drowned the log. The caller has the error; the
			// bootstrapper warns once of a bootnode, the redial when it gives up.
			log.Debug().Err(msg.err).Str("peer", msg.addr.ID.Short()).Msg("dial failed")
			m.finishDial(msg.addr.ID, msg.err)
			m.dialFailed(msg.addr.ID, msg.err)
		} else {
			log.Debug().Err(msg.err).Str("remote", msg.raw.RemoteAddr().String()).Msg("inbound handshake failed")
		}
		return
	}
	id := msg.sc.RemoteID()
	refuse := func(reason messages.DisconnectReason, detail string, dialErr error) {
		log.Info().Str("peer", id.Short()).Str("reason", reason.String()).Msg("connection refused: " + detail)
		m.closeWithNotice(msg.sc, reason, detail)
		if msg.outbound {
			m.finishDial(id, dialErr)
			m.dialFailed(id, dialErr) // a peer still wanted and not connected (no slot here, say) is tried again
		}
	}
	if id == m.n.ID() {
		refuse(messages.DisconnectReason_DISCONNECT_REASON_SELF, "connected to self", ErrSelf)
		return
	}
	if reason, banned := m.banned(id, addrIP(msg.sc.RemoteAddr()), time.Now()); banned {
		refuse(messages.DisconnectReason_DISCONNECT_REASON_BANNED, reason, bannedError(id, reason))
		m.unwant(id) // banned at an address the ban could not match before the dial (a host name)
		return
	}
	if _, undial := m.undial[id]; undial && msg.outbound {
		delete(m.undial, id)
		refuse(messages.DisconnectReason_DISCONNECT_REASON_REQUESTED, "disconnected while dialing",
			fmt.Errorf("%w: %s: disconnected (Node.Disconnect) while dialing", ErrPeerGone, id.Short()))
		return
	}
	old, replacing := m.conns[id]
	if replacing && !m.keepNew(old.pc.outbound, msg.outbound, id) {
		// The connection we already have wins the simultaneous-dial tie-break. The peer may have sent on this one
		// before it learned of the tie-break, so it is closed as a replaced one is, reading on (retire).
		log.Info().Str("peer", id.Short()).Str("reason", messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION.String()).
			Msg("connection refused: already connected")
		m.retire(ctx, msg.sc, msg.outbound)
		if msg.outbound {
			m.finishDial(id, nil)
			m.dialFailed(id, nil)
		}
		return
	}
	// The slots are checked before the connection it replaces is closed: a newcomer refused for want of a slot
	// leaves the old connection up. The old one's slot counts as free only in the newcomer's direction.
	freed := 0
	if replacing && old.pc.outbound == msg.outbound {
		freed = 1
	}
	if msg.outbound && m.count(true)-freed >= m.n.cfg.MaxOutboundPeers && !m.evictIdleOutbound() {
		refuse(messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS, "outbound slots full", ErrTooManyPeers)
		return
	}
	if !msg.outbound && m.count(false)-freed >= m.n.cfg.MaxInboundPeers && !m.evictIdleInbound() &&
		(msg.sc.Peer().Transient || !m.evictInbound(id)) {
		refuse(messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS, "inbound slots full", nil)
		return
	}
	if replacing {
		old.awaitsPeer = old.pc.outbound != msg.outbound && !m.awaitingPeer(id) // a simultaneous dial's loser
		old.pc.closeDuplicate("replaced by a simultaneous connection", old.awaitsPeer)
	}
	// The new connection takes the old one's place in the peer set before the old one leaves it: in between, a
	// Send found the peer not connected, dialed, and failed with ErrPeerGone (TestSendsOverSimultaneousDials...).
	m.register(ctx, msg.sc, msg.outbound)
	if replacing {
		m.unregister(old)
	}
	if msg.outbound {
		m.finishDial(id, nil)
	} else if _, undial := m.undial[id]; !undial {
		// The dialers waiting for this peer have their connection; a dial of ours still in progress keeps its
		// place (its slot, a Disconnect's undial mark, whose callers it answers) until it reports.
		m.answerDialers(id, nil)
	}
}

// keepNew decides the simultaneous-dial tie-break the same way on both sides: the connection dialed by the node with
// the smaller NodeID survives.
func (m *peerManager) keepNew(oldOutbound, newOutbound bool, peer session.NodeID) bool {
	if oldOutbound == newOutbound {
		return true // a reconnect in the same direction replaces a connection the peer has given up on
	}
	selfID := m.n.ID()
	selfSmaller := bytes.Compare(selfID[:], peer[:]) < 0
	return newOutbound == selfSmaller
}
