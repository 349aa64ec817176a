// Package actors is the actormesh node: its supervision tree of actors (listener, peer manager with one actor per
// connection, protocol supervisor) and the public embedding API (NewNode, Start, Register, Send, Request, Close).
package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/eventstream"
	cmap "github.com/orcaman/concurrent-map"
	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Node is one actormesh peer embedded in a process. Create it with NewNode, then Start it; Close stops every actor
// and goroutine it owns. All methods are safe for concurrent use.
type Node struct {
	cfg      Config
	identity *session.Identity
	log      zerolog.Logger
	system   *actor.ActorSystem
	// ownSystem is set when the node created its actor system (Config.ActorSystem nil) and shuts it down.
	ownSystem bool
	// events carries the node's peer events; it is the node's own, so that nodes sharing an actor system do not
	// see each other's.
	events *eventstream.EventStream
	// eventSubs are the open subscriptions made by Events, whose channels Close closes.
	eventSubsMu sync.Mutex
	eventSubs   map[*EventSubscription]struct{}

	stats *nodeStats
	peers *peerSet
	// bans is the ban list (Ban, BanIP), read by the peer manager and by the callers of Send, Request and Ping.
	bans  *nodeBans
	addrs *addressBook
	// relooked remembers the peers the application's dials looked up again lately (dialFor).
	relooked *relookups
	// given are the addresses the application gave; a dial of any other address is checked with dialCheck.
	given     *givenAddrs
	dialCheck func(netip.Addr) error
	protocols *protocolRegistry
	requests  *requestTable
	// accepted holds the accepted connections on their way to the peer manager, closed by Close if never taken.
	accepted *acceptedConns

	// startMu serialises Start, and Close with a Start under way.
	startMu sync.Mutex
	mu      sync.Mutex
	// starting is closed once a Start under way has started the node or given up; nil when no Start is under way.
	starting  chan struct{}
	started   bool
	guardian  *actor.PID
	peerMgr   *actor.PID
	protoSup  *actor.PID
	routing   *actor.PID
	relay     *gossip.Relay
	listener  net.Listener
	advertise string
	// record is the node's own signed record for advertise, made by Start before it spawns the actors, so that the
	// routing actor has it before the bootstrapper's first exchange; nil without one.
	record *messages.NodeRecord

	closed    chan struct{}
	closeOnce sync.Once
	// failure is why the node closed itself (Err), set before it closes.
	failure atomic.Pointer[error]
	// joining is whether the node is still making its first connections, as its bootstrapper last told
	// (bootstrap.Network.SetJoining); true from the start for a node that wants outbound connections.
	joining atomic.Bool
	// routingDone is closed when the routing actor has stopped: at Close, or for good after failing too often
	// (then discovery calls fail with routing.ErrStopped rather than wait for their contexts). Each Start makes its
	// own, which its guardian closes: a Start that failed leaves the next one a fresh one.
	routingDone chan struct{}

	// aborting is set while a Start that failed stops the actor tree it spawned: its actors stopping is no failure.
	aborting atomic.Bool

	// dispatchers are the dedicated mailbox goroutines of the node's actors, stopped and awaited by Close.
	dispatchersMu sync.Mutex
	dispatchers   []*dedicatedDispatcher
}

// NewNode validates cfg and builds a node; nothing runs until Start.
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Identity == nil {
		id, err := session.GenerateIdentity()
		if err != nil {
			return nil, fmt.Errorf("generate identity: %w", err)
		}
		cfg.Identity = id
	}
	stats := newNodeStats()
	n := &Node{
		cfg:       cfg,
		identity:  cfg.Identity,
		stats:     stats,
		peers:     &peerSet{m: make(map[session.NodeID]*peerConn), stats: stats},
		bans:      newNodeBans(maxBans),
		addrs:     newAddressBook(addressBookSize),
		relooked:  &relookups{at: make(map[session.NodeID]relookup)},
		given:     &givenAddrs{m: make(map[string]struct{})},
		protocols: newProtocolRegistry(),
		requests:  newRequestTable(),
		accepted:  newAcceptedConns(),
		events:    eventstream.NewEventStream(),
		closed:    make(chan struct{}),

		routingDone: make(chan struct{}),
	}
	n.log = cfg.Logger.With().Str("node", n.identity.NodeID().Short()).Logger()
	// A shared configuration lists the node among its own peers or bootnodes: it is left out, or the node dials
	// itself for good (a bootnode retried the join every 2 s, each time logging itself unreachable).
	n.cfg.Peers = n.withoutSelf(cfg.Peers, "Config.Peers")
	n.cfg.Bootstrap.Bootnodes = n.withoutSelf(cfg.Bootstrap.Bootnodes, "Config.Bootstrap.Bootnodes")
	cfg = n.cfg
	for _, p := range cfg.Peers {
		n.addrs.put(p.ID, p.Addr)
		n.given.add(p.Addr)
	}
	for _, p := range cfg.Bootstrap.Bootnodes {
		n.given.add(p.Addr)
	}
	return n, nil
}

// withoutSelf returns addrs without the node's own id, in a new slice when it was there (logged at info).
func (n *Node) withoutSelf(addrs []session.PeerAddr, what string) []session.PeerAddr {
	self := n.identity.NodeID()
	if !slices.ContainsFunc(addrs, func(p session.PeerAddr) bool { return p.ID == self }) {
		return addrs
	}
	n.log.Info().Str("list", what).Msg("the node's own address is in the list: left out")
	return slices.DeleteFunc(slices.Clone(addrs), func(p session.PeerAddr) bool { return p.ID == self })
}

// ID returns the node's NodeID (its ed25519 public key).
func (n *Node) ID() session.NodeID { return n.identity.NodeID() }

// NewActorSystem returns a protoactor system whose logs go to log. Nodes of one process (a simulation) may share
// one through Config.ActorSystem; its owner shuts it down after closing them.
func NewActorSystem(log zerolog.Logger) *actor.ActorSystem {
	slogger := slog.New(zerolog.NewSlogHandler(log.With().Str("lib", "protoactor").Logger()))
	sys := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slogger }),
		actor.WithDeadLetterThrottleInterval(100*time.Millisecond),
		actor.WithDeadLetterRequestLogging(false),
	)
	shrinkRegistry(sys)
	return sys
}

// registryBuckets is the number of concurrent maps in an actor system's process registry, each of 32 shards.
const registryBuckets = 4

// shrinkRegistry replaces the process registry's 1024 concurrent maps (32 768 Go maps: 2.8 MB at creation, and
// ~4.5 MB more once actors have come and gone, since a Go map never shrinks) with registryBuckets of them, keeping
// what the system registered on creation (its dead-letter and event-stream processes). Lookups by PID mostly
// skip the registry: a PID caches its process. It must run before the system is used.
func shrinkRegistry(sys *actor.ActorSystem) {
	small := &actor.SliceMap{LocalPIDs: make([]cmap.ConcurrentMap, registryBuckets)}
	for i := range small.LocalPIDs {
		small.LocalPIDs[i] = cmap.New()
	}
	for _, bucket := range sys.ProcessRegistry.LocalPIDs.LocalPIDs {
		bucket.IterCb(func(id string, p any) { small.GetBucket(id).Set(id, p) }) // Items would start a goroutine per shard
	}
	sys.ProcessRegistry.LocalPIDs = small
}

// Addr returns the node's address in the one text form, <id>@host:port. Before Start, or for a node that does not
// listen, Addr has an empty host:port.
func (n *Node) Addr() session.PeerAddr {
	n.mu.Lock()
	defer n.mu.Unlock()
	return session.PeerAddr{ID: n.ID(), Addr: n.advertise}
}

func (n *Node) addrString() string {
	return session.PeerAddr{ID: n.ID(), Addr: n.advertise}.String()
}

// advertiseAddr is the address peers are told to dial: the configured one, else the listener's, whose unspecified
// host (0.0.0.0, ::) becomes the host's first usable interface address (interfaces lists them; see
// advertiseIP).
func advertiseAddr(configured string, listen net.Addr, interfaces func() ([]net.Addr, error)) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return listen.String()
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsUnspecified() {
		var addrs []net.Addr
		if interfaces != nil {
			addrs, _ = interfaces() // none: loopback below
		}
		host = advertiseIP(addrs, ip.Is6()).String()
	}
	return net.JoinHostPort(host, port)
}

// advertiseIP chooses, among a host's interface addresses, the one to advertise for a listener on every
// interface: a global unicast or private address, IPv4 first (a listener on :: takes IPv4 too), else loopback
// (IPv6's when v6 is set). Advertising loopback, as the node did before, made it undialable from other hosts:
// their records drop loopback addresses (routing's relay-IP rule), so lookups for it failed. memberlist and
// go-libp2p also advertise an interface's address.
func advertiseIP(addrs []net.Addr, v6 bool) netip.Addr {
	rank := func(ip netip.Addr) int { // higher is better; 0: not advertisable
		switch {
		case !ip.IsGlobalUnicast() || ip.IsLinkLocalUnicast():
			return 0
		case ip.Is4():
			return 2
		default:
			return 1
		}
	}
	var best netip.Addr
	for _, a := range addrs {
		if p, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(p.IP); ok && rank(ip.Unmap()) > rank(best) {
				best = ip.Unmap()
			}
		}
	}
	switch {
	case best.IsValid():
		return best
	case v6:
		return netip.IPv6Loopback()
	default:
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
}

// PeerInfo describes one live connection.
type PeerInfo struct {
	// ID is the peer's NodeID.
	ID session.NodeID
	// RemoteAddr is the address of the connection's other end.
	RemoteAddr string
	// LocalAddr is this end's address of the connection.
	LocalAddr string
	// ListenAddrs are the addresses the peer declared in its handshake.
	ListenAddrs []string
	// Outbound is true when this node dialed.
	Outbound bool
	// Kept is true for a peer the node keeps connected (redialed after failures); other outbound connections are
	// transient (dialed on demand) and closed when idle.
	Kept bool
	// RTT is the last keepalive round-trip time (0 before the first pong).
	RTT time.Duration
	// ConnectedAt is when the connection was established.
	ConnectedAt time.Time
	// QueuedBytes is what waits in the peer's outbound queue, the batch being written included.
	QueuedBytes int
	// LastRelayed is when the peer last was the first to deliver a gossip message of another origin that this node
	// accepted, to the relay's heartbeat (zero: never; its own publications do not count). When the inbound slots are full, the peers that relayed most recently are
	// among those a newcomer cannot evict.
	LastRelayed time.Time
	// RekeyInterval is how many transport frames each direction of the connection seals under one key: the smaller
	// of Config.RekeyInterval (its default if 0) and the peer's, or 0 with a peer of a build that does not rekey.
	RekeyInterval uint64
	// Rekeys counts the keys the connection has replaced so far, both directions together.
	Rekeys uint64
}

// Peers lists the live connections, sorted by NodeID.
func (n *Node) Peers() []PeerInfo {
	conns := n.peers.all()
	out := make([]PeerInfo, 0, len(conns))
	for _, pc := range conns {
		out = append(out, PeerInfo{
			ID: pc.id, RemoteAddr: pc.sc.RemoteAddr().String(), LocalAddr: pc.sc.LocalAddr().String(), ListenAddrs: pc.sc.Peer().ListenAddrs,
			Outbound: pc.outbound, Kept: pc.kept.Load(), RTT: pc.rtt(), ConnectedAt: pc.connectedAt, QueuedBytes: pc.q.len(),
			LastRelayed: unixNanoTime(pc.lastRelayed.Load()), RekeyInterval: pc.sc.RekeyInterval(), Rekeys: rekeysOf(pc.sc),
		})
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].ID[:]) < string(out[j].ID[:]) })
	return out
}

// rekeysOf is the count of keys sc has replaced, both directions together.
func rekeysOf(sc *session.Conn) uint64 {
	sealed, opened := sc.Rekeys()
	return sealed + opened
}

// Connected tells whether a connection to peer is live.
func (n *Node) Connected(peer session.NodeID) bool { return n.peers.get(peer) != nil }

// WaitPeers waits until at least min connections are live, polling until ctx ends: Start returns once the node
// listens, and dials its peers and bootnodes in the background. A node joining through bootnodes can look others
// up once it has one. Errors: ErrNotStarted, ErrClosed (also when the node closes while it waits), or ctx's error
// wrapped with the count it reached.
func (n *Node) WaitPeers(ctx context.Context, min int) error {
	if _, err := n.peerManager(); err != nil {
		return err
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		have := n.peers.count()
		if have >= min {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d peers (have %d): %w", min, have, ctx.Err())
		case <-n.closed:
			return ErrClosed
		case <-t.C:
		}
	}
}

// Connect dials addr (unless connected) and waits until the connection is up or ctx ends; a connection to the peer
// that is closing (after Disconnect, say) is waited for to end, and the peer dialed again. With keep set, the peer
// manager keeps the peer connected, redialing with backoff after failures (also when ctx ends first: ctx bounds
// the wait, not the wish; Disconnect ends it); without, the connection closes after
// Config.TransientIdleTimeout without messages. A ctx already ended fails at once and dials nothing. Errors:
// session.ErrBadPeerAddr, ErrSelf, ErrBanned, ErrTooManyPeers (no outbound slot freed in time), the handshake's
// (session.ErrWrongPeer: another node answered; session.ErrNetworkMismatch; session.ErrHandshakeTimeout), the
// dial's (wrapped net errors), ErrClosed, ErrNotStarted, or ctx's error. An address without an id (zero) fails with an error wrapping
// session.ErrBadPeerAddr: the node dials a given peer, never whoever answers.
func (n *Node) Connect(ctx context.Context, addr session.PeerAddr, keep bool) error {
	n.given.add(addr.Addr)
	if err := n.connect(ctx, addr, keep, false); err != nil {
		return err
	}
	if pc := n.peers.get(addr.ID); pc != nil {
		pc.appUsed.Store(true)
	}
	return nil
}

// connect is Connect for the node's own use: the connection is not marked as the application's. auto marks the
// node's own choice of peer (discovery's), which leaves a peer the application disconnected alone.
func (n *Node) connect(ctx context.Context, addr session.PeerAddr, keep, auto bool) error {
	if err := checkPeerID(addr.ID, addr.Addr); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	pid, err := n.peerManager()
	if err != nil {
		return err
	}
	if addr.ID == n.ID() {
		return ErrSelf
	}
	if err := ctx.Err(); err != nil { // it would dial, and keep, a peer its caller no longer waits for
		return fmt.Errorf("connect %s: %w", addr.ID.Short(), err)
	}
	prev, hadPrev := n.addrs.get(addr.ID)
	n.addrs.put(addr.ID, addr.Addr)
	reply := make(chan error, 1)
	deadline, _ := ctx.Deadline()
	n.system.Root.Send(pid, &dialRequest{addr: addr, keep: keep, auto: auto, reply: reply, deadline: deadline, gaveUp: ctx.Done(),
		slotWaited: slotWaitFrom(ctx)})
	select {
	case err := <-reply:
		if errors.Is(err, errCallerGaveUp) { // ctx ended as the answer came
			return fmt.Errorf("connect %s: %w", addr.ID.Short(), ctx.Err())
		}
		if errors.Is(err, session.ErrWrongPeer) {
			// Another node answers there: the address the node knew before (the peer's own, from its handshake or
			// record) is put back, or every later Send dialed the wrong node.
			n.addrs.undo(addr.ID, addr.Addr, prev, hadPrev)
		}
		return err
	case <-ctx.Done():
		return fmt.Errorf("connect %s: %w", addr.ID.Short(), ctx.Err())
	case <-n.closed:
		return ErrClosed
	}
}

// Disconnect closes the connection to peer with reason REQUESTED, if any, and stops redialing it; a dial to it in
// progress is closed as it comes up (its Connect fails with ErrPeerGone). For 10 minutes the node does not keep
// a connection to it again by itself (discovery's outbound peers, gossip's tree shortcuts): its lookups may still
// reach it over short-lived connections. The application's own Connect ends that hold. The peer may still dial
// in: Ban refuses it. A peer of this build that had chosen the node itself (its bootstrapper's, its tree
// shortcuts') does not redial it and holds it likewise; one whose application keeps the node redials it.
func (n *Node) Disconnect(peer session.NodeID) error {
	pid, err := n.peerManager()
	if err != nil {
		return err
	}
	n.system.Root.Send(pid, &disconnectRequest{id: peer})
	return nil
}

func (n *Node) peerManager() (*actor.PID, error) {
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	if !n.whenStarted() {
		select {
		case <-n.closed: // Close ended the Start it waited for
			return nil, ErrClosed
		default:
			return nil, ErrNotStarted
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peerMgr, nil
}

// connFor returns the live connection to peer, dialing its known address when there is none; app marks it as
// used by the application (see peerConn.appUsed), whose dials look the peer up again when its known address fails.
// A connection that is closing counts as none: the dial waits for it to end and dials again (see
// peerManager.afterClose), so a Send right after a Disconnect, or while the peer's goodbye is read, is not refused
// with ErrPeerGone by a connection on its way out.
func (n *Node) connFor(ctx context.Context, peer session.NodeID, app bool) (*peerConn, error) {
	pc, err := n.dialFor(ctx, peer, app)
	if err == nil && app {
		pc.appUsed.Store(true)
	}
	return pc, err
}

// dialFor is connFor's dial; relookup looks the peer up when its known address fails. The node's own requests
// (discovery's liveness checks and lookups) do not: a check that failed is the check's answer, and a lookup's
// request looking its peer up would start lookups of its own.
func (n *Node) dialFor(ctx context.Context, peer session.NodeID, relookup bool) (*peerConn, error) {
	if err := ctx.Err(); err != nil { // nothing is sent under a context that ended already
		return nil, err
	}
	pc := n.peers.get(peer)
	if err := n.bannedConn(peer, pc); err != nil { // the ban's close of pc may not have begun yet
		return nil, err
	}
	if pc != nil && !pc.isClosing() {
		return pc, nil
	}
	if _, err := n.peerManager(); err != nil { // ErrNotStarted or ErrClosed, before any lookup
		return nil, err
	}
	if peer == n.ID() {
		return nil, ErrSelf
	}
	addr, known := n.addrs.get(peer)
	if !known {
		found, err := n.Lookup(ctx, peer)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnknownPeer, peer.Short(), err)
		}
		addr = found.Addr
	}
	if err := n.connect(ctx, session.PeerAddr{ID: peer, Addr: addr}, false, false); err != nil {
		// The address the node knew may be stale: the peer moved (another node, or none, answers there). A lookup
		// finds where it is now, as go-libp2p's routed host looks a peer up when its known addresses fail; the
		// node dialed the stale address for good, until a lookup of its own happened to pass the peer's record.
		moved := relookup && known && !n.cfg.DisableDiscovery && (errors.Is(err, session.ErrWrongPeer) || errors.Is(err, ErrUnreachable))
		if !moved || !n.relooked.take(peer, time.Now()) {
			return nil, err
		}
		found, lerr := n.Lookup(ctx, peer)
		if lerr != nil || found.Addr == addr {
			return nil, err
		}
		if err := n.connect(ctx, session.PeerAddr{ID: peer, Addr: found.Addr}, false, false); err != nil {
			return nil, err
		}
		addr = found.Addr
	}
	pc = n.peers.get(peer)
	if pc == nil {
		// The connection the dial was answered with left the peer set before this caller took it: a simultaneous
		// dial's loser, registered here and closed by the peer as a duplicate, its winner still in its handshake
		// here (the caller's goroutine ran ~20 ms after the answer on a loaded host, and a Send failed with
		// ErrPeerGone while the peer stayed connected: TestSendsOverSimultaneousDialsAreAllDelivered). One more
		// dial is answered once the winner is up, or makes a connection the tie-break settles as the first dial's
		// was. A connection lost for another cause (a full peer's refusal) costs one dial more, at most.
		if err := n.connect(ctx, session.PeerAddr{ID: peer, Addr: addr}, false, false); err != nil {
			return nil, err
		}
		pc = n.peers.get(peer)
	}
	if pc == nil {
		return nil, fmt.Errorf("%w: %s", ErrPeerGone, peer.Short())
	}
	n.relooked.forget(peer)
	return pc, nil
}

// relookupFirst and relookupMax bound how long after the application's dial looked a peer up again (its known
// address failed) its dials do not look it up again: the wait doubles from relookupFirst at each lookup, up to
// relookupMax, and starts over once the application's dial connects the peer. The lookup of a peer that is down
// finds its address unchanged, and one lookup per Send to it took every lookup place (Routing.MaxLookups) from
// discovery and the application within seconds (a review's finding); a flat 30 s wait kept a peer that came back
// at another address out of reach that long (another review's).
const (
	relookupFirst = time.Second
	relookupMax   = 30 * time.Second
)

// maxRelookups bounds the peers relookups remembers: beyond, with none of them past relookupMax, no peer is looked
// up again.
const maxRelookups = 1024

// relookups remembers when the application's dials last looked each peer up again (dialFor), and how long they
// wait before the next.
type relookups struct {
	mu sync.Mutex
	at map[session.NodeID]relookup
}

// relookup is a peer's last lookup again and the wait after it.
type relookup struct {
	at   time.Time
	wait time.Duration
}

// take tells whether peer may be looked up again now, and if so records it.
func (r *relookups) take(peer session.NodeID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.at[peer]
	if ok && now.Sub(last.at) < last.wait {
		return false
	}
	if !ok && len(r.at) >= maxRelookups {
		for id, l := range r.at {
			if now.Sub(l.at) >= relookupMax {
				delete(r.at, id)
			}
		}
		if len(r.at) >= maxRelookups {
			return false
		}
	}
	wait := relookupFirst
	if ok {
		wait = min(2*last.wait, relookupMax)
	}
	r.at[peer] = relookup{at: now, wait: wait}
	return true
}

// forget starts peer's waits over: it is connected.
func (r *relookups) forget(peer session.NodeID) {
	r.mu.Lock()
	delete(r.at, peer)
	r.mu.Unlock()
}

// MaxProtocolIDLength bounds a protocol id, in bytes (Register, Send, Request, Config.Protocols): a peer's
// refusals and window updates repeat the name.
const MaxProtocolIDLength = 256

// Register spawns a protocol actor from props under the protocol supervisor and routes every message peers send to
// protocol to it as an *Inbound. A panicking protocol actor is restarted (Config.ProtocolRestarts), then stopped
// and its protocol unregistered (a messages.ProtocolStopped event; Register it again to serve it, from a goroutine
// of the application's, never from the SubscribeEvents callback itself: see there); a request it
// panicked on is answered with an error at once. Accepts restricts the payload types peers may send it; without
// it, the actor must check every payload's type itself. Register needs a started node (ErrNotStarted): a protocol
// to serve from the node's first connection goes in Config.Protocols. The actor gets the node's unbounded mailbox
// whatever props ask for (flow control bounds it: a bounded one blocked the connection's reader or dropped messages
// whose credits were never given back), and its panics are logged at error with their stack. A receiver middleware of props runs before
// the node's own, which gives each *Inbound's flow-control credit back once the actor is done with it: it must pass
// every *Inbound on, or the credits of those it drops are never given back and the peer's sends to the protocol
// stop (ErrOverloaded). An *Inbound the actor passes on to another protocol actor (Send, Request, Forward) that
// stops before it takes it counts in Stats.InboundDropped, a request answered with UNKNOWN_PROTOCOL. A request is answered with Inbound.Reply or ReplyError, not protoactor's ctx.Respond: an
// Inbound comes with no sender, so a Respond goes to the dead letters and the requester waits for its timeout.
// Errors: ErrProtocolRegistered, ErrInvalidArgument, ErrClosed.
func (n *Node) Register(protocol string, props *actor.Props, opts ...RegisterOption) (*actor.PID, error) {
	if protocol == "" {
		return nil, fmt.Errorf("register: %w: empty protocol id", ErrInvalidArgument)
	}
	if !utf8.ValidString(protocol) {
		return nil, fmt.Errorf("register %q: %w: protocol id is not valid UTF-8 (no peer could send to it)", protocol, ErrInvalidArgument)
	}
	if len(protocol) > MaxProtocolIDLength {
		return nil, fmt.Errorf("register: %w: a protocol id of %d bytes, limit %d", ErrInvalidArgument, len(protocol), MaxProtocolIDLength)
	}
	if strings.ContainsFunc(protocol, unicode.IsControl) {
		return nil, fmt.Errorf("register %q: %w: %w", protocol, ErrInvalidArgument, errControlInProtocol)
	}
	if props == nil {
		// Checked here: the protocol supervisor would panic on it and the caller would wait for a reply forever.
		return nil, fmt.Errorf("register %s: %w: props is nil", protocol, ErrInvalidArgument)
	}
	o, err := registerOptionsOf(opts)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", protocol, err)
	}
	if !n.whenStarted() {
		select {
		case <-n.closed: // closed before it started, or while it started: closed, as every other call says
			return nil, ErrClosed
		default:
			return nil, ErrNotStarted
		}
	}
	n.mu.Lock()
	sup := n.protoSup
	n.mu.Unlock()
	select {
	case <-n.closed:
		return nil, ErrClosed
	default:
	}
	reply := make(chan registerResult, 1)
	n.system.Root.Send(sup, &registerProtocol{protocol: protocol, props: props, opts: o, reply: reply})
	select {
	case r := <-reply:
		return r.pid, r.err
	case <-n.closed:
		return nil, ErrClosed
	}
}

// RegisterFunc registers a protocol served by a function: handle is called with each message peers send to
// protocol, one at a time, on the goroutine of a protocol actor made for it (Register's rules apply: a panic
// restarts it, Accepts restricts the payload types). handle must not block: it holds the protocol's next
// messages, and Close waits for it (up to protoactor's stop timeout, 10 s). SubscribeProtocol refuses such a
// protocol: use Subscribe for its topics. It is for protocols that keep no state between messages or
// guard their own; one whose state lives in an actor gets other messages through Register's props.
func (n *Node) RegisterFunc(protocol string, handle func(*Inbound), opts ...RegisterOption) error {
	if handle == nil {
		return fmt.Errorf("register %s: %w: handler is nil", protocol, ErrInvalidArgument)
	}
	_, err := n.Register(protocol, actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*Inbound); ok {
			handle(in)
		}
	}), append(opts, func(o *registerOptions) { o.inboundOnly = true })...)
	return err
}

// AddAddress tells the node where peer can be dialed (Send, Request and Connect use it). A zero peer id, or an
// address that is not a host:port with a port in 1..65535 (session.ParseHostPort), fails with an error wrapping
// session.ErrBadPeerAddr. It may be called before Start; after Close it fails with ErrClosed, the address unused.
func (n *Node) AddAddress(peer session.NodeID, addr string) error {
	if err := checkPeerID(peer, addr); err != nil {
		return fmt.Errorf("add address: %w", err)
	}
	select {
	case <-n.closed:
		return fmt.Errorf("add address: %w", ErrClosed)
	default:
	}
	n.given.add(addr)
	n.addrs.put(peer, addr)
	return nil
}

// checkPeerID refuses the zero NodeID as a peer's (at addr): a handshake expecting it accepts any peer, and the
// connection it makes is another peer's than the one dialed; and an address that is not a host:port, which took the
// peer's place in the address book and then failed every dial.
func checkPeerID(id session.NodeID, addr string) error {
	if id.IsZero() {
		return fmt.Errorf("%w: %q: id is zero", session.ErrBadPeerAddr, addr)
	}
	if addr == "" {
		return fmt.Errorf("%w: %s: no address", session.ErrBadPeerAddr, id.Short())
	}
	if _, err := session.ParseHostPort(addr); err != nil { // dialing it would fail with an error matching nothing
		return fmt.Errorf("%s: %w", id.Short(), err)
	}
	return nil
}

// ActorSystem exposes the protoactor system the node runs on, for spawning helper actors next to protocol actors.
// Before Start it is Config.ActorSystem (nil unless one was given). Actors spawned on it from its Root are the
// application's: Close stops them only with a system the node made itself (it shuts that down); on a shared
// system (Config.ActorSystem) the application stops them, or spawns them from a protocol actor (Register), whose
// children Close stops with it.
func (n *Node) ActorSystem() *actor.ActorSystem {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.system == nil {
		return n.cfg.ActorSystem
	}
	return n.system
}
