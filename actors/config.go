package actors

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/bootstrap"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// maxQueueBytes bounds Config.SendQueueBytes, well below where adding the control allowance overflows.
const maxQueueBytes = math.MaxInt / 4

// MaxNetworkIDLength bounds Config.NetworkID: a longer one was accepted, and every handshake then failed as too
// large.
const MaxNetworkIDLength = 256

// Config configures a Node. Start from DefaultConfig and override what you need; NewNode validates it.
type Config struct {
	// Identity is the node's ed25519 key. Nil generates a fresh one (fine for tests, not for a long-lived peer).
	Identity *session.Identity
	// NetworkID separates networks: peers with another id are refused at the handshake. At most
	// MaxNetworkIDLength bytes. Default "actormesh".
	NetworkID string
	// ListenAddr is the host:port to accept connections on. Default "127.0.0.1:0" (a free loopback port).
	// Empty means the node does not listen (a pure client, as `node ping` is).
	ListenAddr string
	// AdvertiseAddr is the host:port other peers should dial; default: the listener's address, with an unspecified
	// host (0.0.0.0, ::) replaced by the host's first global unicast or private interface address (IPv4 first),
	// or by loopback if it has none. Set it behind NAT or to choose among several interfaces.
	AdvertiseAddr string
	// Peers are dialed at Start and kept connected: the peer manager redials them with backoff when they drop.
	Peers []session.PeerAddr
	// Protocols are registered as the node starts, before it makes or takes any connection (see Protocol); the
	// others can be registered after Start with Node.Register.
	Protocols []Protocol
	// Transport opens connections. Default session.TCPTransport.
	Transport session.Transport

	// MaxInboundPeers caps connections accepted from others. Default 50.
	MaxInboundPeers int
	// MaxOutboundPeers caps connections the node dials. Default 25.
	MaxOutboundPeers int
	// MaxPendingHandshakes caps inbound handshakes in progress (the node's own dials are capped by
	// MaxOutboundPeers). When they are all taken, the oldest inbound handshake of the remote host holding the most
	// is closed to make room for a newcomer, if it has gone on for a second (or half of HandshakeTimeout); otherwise
	// the newcomer is closed at once. Default 64.
	MaxPendingHandshakes int
	// MaxMessageSize is the largest message accepted from or sent to a peer, checked before allocation. Each
	// node tells its peers its own in the handshake, and sends a peer nothing over the smaller of the two: a Send or
	// Request over it fails with ErrMessageTooLarge, a gossip message over it does not go to that peer. Default
	// 1 MiB, at least MinMessageSize. A gossip message's data may take it less 4 KiB (and at most
	// Gossip.MaxMessageSize).
	MaxMessageSize int
	// SendQueueBytes bounds each peer's outbound queue, the batch being written included, each message counting
	// 64 bytes beyond its own (a message of any size is taken when nothing is queued or being written). The
	// application's messages (Send, Request, Reply) go only while it holds less than half of this and has room for
	// them: otherwise Send and Request wait for room (ErrOverloaded when their context ends) and a Reply goes as an
	// OVERLOADED error. A peer whose queue is full is too slow: it is disconnected with reason SLOW_PEER. Default
	// 16 MiB.
	SendQueueBytes int
	// InboundPending bounds the messages read from one peer that its protocol actors have not processed yet;
	// at the bound the connection stops reading (TCP back-pressure on that peer only). Of the messages to the
	// application's protocols, the peer may have at most half of it (and of InboundPendingBytes) outstanding with
	// one protocol actor and three quarters with all of them: the node advertises that window in its handshake, the
	// peer's Send and Request wait for room in it (flow control), and a peer sending past it is disconnected with
	// reason FLOW_CONTROL. A slow protocol actor so holds back its own senders only: the connection goes on
	// reading for the node's other protocols, gossip and pings. Default 4096.
	InboundPending int
	// InboundPendingBytes bounds the same messages by their encoded payload bytes, so that a peer cannot make one
	// connection hold InboundPending messages of MaxMessageSize each (4 GiB at the defaults). It must hold at least
	// one message of MaxMessageSize. Default 4 MiB.
	InboundPendingBytes int

	// HandshakeTimeout bounds a handshake. Default 5s.
	HandshakeTimeout time.Duration
	// RekeyInterval is how many transport frames each direction of a connection seals under one AES-GCM key before
	// both ends replace it (session.HandshakeConfig.RekeyInterval): a connection uses the smaller of the two ends'
	// values (PeerInfo.RekeyInterval), and does not rekey with a peer of a build that does not. Default 0, which
	// means session.DefaultRekeyInterval (2^20 frames, at most 64 GiB under one key); otherwise it must be in
	// session.MinRekeyInterval..session.MaxRekeyInterval (2^10..2^22).
	RekeyInterval int
	// DialTimeout bounds opening a connection. Default 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds one batched write to a peer; a peer that does not read for that long is disconnected
	// with reason SLOW_PEER. Default 10s. The deadline is moved at most every tenth of it (at most every second),
	// so a write has between nine tenths of WriteTimeout and WriteTimeout.
	WriteTimeout time.Duration
	// PingInterval is how long a connection may receive nothing before it sends a keepalive ping, which the
	// peer answers (the pong also measures the RTT); a busy connection pings only every 6 intervals, to keep
	// its RTT fresh. Default 10s, at least MinPingInterval.
	PingInterval time.Duration
	// IdleTimeout closes a connection on which nothing was received for that long. Default 30s.
	IdleTimeout time.Duration
	// RequestTimeout applies to Request and Ping when the context has no deadline. Default 10s.
	RequestTimeout time.Duration
	// TransientIdleTimeout closes an outbound connection the node does not keep (one dialed on demand for a
	// lookup or a Send to a peer that is not a wanted peer) after that long without a direct message. Such
	// connections also make room for new dials when the outbound slots are full. Default 10s.
	TransientIdleTimeout time.Duration
	// DiscoveryIdleTimeout is TransientIdleTimeout for a transient outbound connection that only discovery used
	// (lookups and the routing table's liveness checks dial nodes for one exchange each), not the application
	// (Send, Request, Ping or Connect on that peer). A connection with a request awaiting its reply is never idle.
	// Default 250ms: during a network's join such connections outnumber the kept ones, each with its reader
	// goroutine, cipher states and connection actor, and they set a node's peak memory.
	DiscoveryIdleTimeout time.Duration

	// RedialBase, RedialMax and RedialAttempts set the redial backoff for wanted peers: exponential with full
	// jitter from RedialBase, capped at RedialMax, giving up after RedialAttempts failures in a row (0: never).
	// Defaults 200ms, 30s, 10.
	RedialBase     time.Duration
	RedialMax      time.Duration
	RedialAttempts int

	// ProtocolRestarts is how many times a panicking protocol actor is restarted within ProtocolRestartWindow
	// before it is stopped. Defaults 10 and 1 minute.
	ProtocolRestarts      int
	ProtocolRestartWindow time.Duration

	// DisableDiscovery runs the node without the routing table and the bootstrapper: direct messaging to known
	// addresses only; Lookup, FindClosest and RoutingTable fail with ErrDiscoveryDisabled. Default false.
	DisableDiscovery bool
	// DataDir holds the node's state: the peer store (peers.pb) and the last sequence number of its record
	// (record.seq). Empty: no state is kept.
	DataDir string
	// Bootstrap configures joining the network and keeping outbound peers: bootnodes, target outbound count, refresh
	// and peer store. Default bootstrap.DefaultConfig(); its Logger is replaced by the node's, and a TargetOutbound
	// over MaxOutboundPeers is lowered to it (logged). The peer store, loaded by the bootstrapper and saved by the
	// routing actor, is Bootstrap.StorePath or Routing.StorePath (either; both must then name the same file), else
	// DataDir/peers.pb, else none.
	Bootstrap bootstrap.Config

	// Routing configures peer discovery (the Kademlia table and lookups). Default routing.DefaultConfig(); its
	// Logger is replaced by the node's.
	Routing routing.Config

	// Gossip configures the topic broadcast relay (Publish, Subscribe). Default gossip.DefaultRelayConfig(); its
	// Logger is replaced by the node's, its MaxMessageSize is lowered when needed to leave 4 KiB of room for
	// the message's metadata under MaxMessageSize, and its MaxRPCSize to MaxMessageSize less the envelope's room.
	Gossip gossip.RelayConfig

	// ActorSystem, if set, is a protoactor system shared with other nodes of the process (see NewActorSystem): a
	// simulation of hundreds of nodes saves ~54 KB of RSS per node (~28 KiB of heap; 2.8 MB before NewActorSystem
	// shrank the process registry). Its owner shuts it
	// down after closing the nodes. Default nil: the node runs and shuts down a system of its own.
	ActorSystem *actor.ActorSystem

	// Buffers, if set, is a buffer pool (session.NewBufferPool) shared with other nodes of the process: it lends
	// the connections their large read and write buffers and the encodings sent on them. A pool keeps what was
	// given back since the collector's last cycles, so every pool holds a reserve of its own, which nodes sharing
	// one pool share too (docs/ARCHITECTURE.md, protoactor pitfalls: memory per node). Default nil: the node keeps a
	// pool of its own.
	Buffers *session.BufferPool

	// Logger receives the node's logs, and protoactor's when the node runs its own actor system; with a shared
	// ActorSystem, protoactor's logs (a protocol actor's restart, dead letters) go to that system's logger (see
	// NewActorSystem; a system made by protoactor's own constructor prints to stderr). Default: disabled.
	Logger zerolog.Logger

	// InboundPerIPRate and InboundPerIPBurst throttle inbound connections per remote IP (an IPv6 address's /64,
	// which one host has whole, counts as one IP here and in MaxInboundPerIP) before any handshake work:
	// one IP may open InboundPerIPBurst connections at once and InboundPerIPRate per second after that; the node
	// closes the others at once. Defaults 4/s and 16.
	InboundPerIPRate  float64
	InboundPerIPBurst int
	// MaxInboundPerIP caps the inbound connections from one remote IP, handshakes in progress included: without
	// it, one host dialing with fresh identities at the throttle's rate held every inbound slot within seconds.
	// Default 8.
	MaxInboundPerIP int
	// ExemptLoopbackThrottle exempts loopback addresses from the per-IP inbound throttle and cap, for tests and simulations
	// running many nodes on 127.0.0.1. Bans apply to loopback all the same. Default false.
	ExemptLoopbackThrottle bool
	// DisableInboundEviction makes a node whose inbound slots are all taken refuse a newcomer, as it does a
	// transient one, rather than close the inbound connection it values least for it (actors/eviction.go: a few
	// connections from network groups chosen by a keyed hash and the longest-connected half of the rest are
	// kept; the /16 or /32 group holding the most of the others gives up its youngest). Connections the node
	// keeps are never evicted. Default false.
	DisableInboundEviction bool
	// InboundEvictionGrace is how long a new inbound connection is safe from eviction: it has had no time yet to
	// relay or to last (go-libp2p's connection manager protects new connections for a grace period too). A
	// newcomer finding only such connections besides the protected ones is refused. Without it, at N = 1000, a
	// few well-known full nodes evicted connections ~0.15 s old, whose dialers came back and evicted the next.
	// Zero: none. Default 10s.
	InboundEvictionGrace time.Duration
}

// DefaultConfig returns a Config with every default filled in and a nil Identity (a fresh one is generated).
func DefaultConfig() Config {
	return Config{
		NetworkID:             "actormesh",
		ListenAddr:            "127.0.0.1:0",
		Transport:             session.TCPTransport{},
		MaxInboundPeers:       50,
		MaxOutboundPeers:      25,
		MaxPendingHandshakes:  64,
		MaxMessageSize:        session.DefaultMaxMessageSize,
		SendQueueBytes:        16 << 20,
		InboundPending:        4096,
		InboundPendingBytes:   4 << 20,
		HandshakeTimeout:      session.DefaultHandshakeTimeout,
		DialTimeout:           5 * time.Second,
		WriteTimeout:          10 * time.Second,
		PingInterval:          10 * time.Second,
		IdleTimeout:           30 * time.Second,
		RequestTimeout:        10 * time.Second,
		TransientIdleTimeout:  10 * time.Second,
		DiscoveryIdleTimeout:  250 * time.Millisecond,
		RedialBase:            200 * time.Millisecond,
		RedialMax:             30 * time.Second,
		RedialAttempts:        10,
		ProtocolRestarts:      10,
		ProtocolRestartWindow: time.Minute,
		Routing:               routing.DefaultConfig(),
		Bootstrap:             bootstrap.DefaultConfig(),
		Gossip:                gossip.DefaultRelayConfig(),
		Logger:                zerolog.Nop(),
		InboundPerIPRate:      4,
		InboundPerIPBurst:     16,
		MaxInboundPerIP:       8,
		InboundEvictionGrace:  10 * time.Second,
	}
}

// MinPingInterval is the shortest Config.PingInterval: a ping every nanosecond (positive, so once valid) sent a
// quiet connection's peer megabytes a second and took a core.
const MinPingInterval = 10 * time.Millisecond

// MinMessageSize is the smallest Config.MaxMessageSize: 16 KiB.
const MinMessageSize = 16 << 10

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid node config")

// Validate reports the first problem in c, wrapping ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.NetworkID == "" {
		return bad("NetworkID is empty")
	}
	if len(c.NetworkID) > MaxNetworkIDLength { // it travels in every handshake, whose messages are bounded
		return bad("NetworkID is %d bytes, want at most %d", len(c.NetworkID), MaxNetworkIDLength)
	}
	if c.Identity != nil && !c.Identity.Valid() {
		return bad("Identity holds no key (make one with session.GenerateIdentity or session.LoadOrCreateIdentity)")
	}
	if c.ListenAddr != "" {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return bad("ListenAddr %q: %v", c.ListenAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		host, port, err := net.SplitHostPort(c.AdvertiseAddr)
		if err != nil {
			return bad("AdvertiseAddr %q: %v", c.AdvertiseAddr, err)
		}
		if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
			return bad("AdvertiseAddr %q: peers cannot dial an unspecified host; leave it empty to advertise an "+
				"interface address", c.AdvertiseAddr)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return bad("AdvertiseAddr %q: want a port number from 1 to 65535", c.AdvertiseAddr)
		}
	}
	if c.Transport == nil {
		return bad("Transport is nil")
	}
	listed := make(map[session.NodeID]bool, len(c.Peers))
	for _, p := range c.Peers {
		if err := checkPeerID(p.ID, p.Addr); err != nil {
			return fmt.Errorf("%w: Peers: %w", ErrInvalidConfig, err)
		}
		if listed[p.ID] { // the node would keep one connection to it all the same, at one of the two addresses
			return fmt.Errorf("%w: Peers lists %s twice", ErrInvalidConfig, p.ID.Short())
		}
		listed[p.ID] = true
	}
	seen := map[string]bool{routing.Protocol: true, gossip.Protocol: true}
	for _, p := range c.Protocols {
		switch {
		case p.ID == "" || !utf8.ValidString(p.ID) || len(p.ID) > MaxProtocolIDLength ||
			strings.ContainsFunc(p.ID, unicode.IsControl):
			return fmt.Errorf("%w: Protocols: %w: protocol id %q is empty, not UTF-8, over %d bytes or holds a control character",
				ErrInvalidConfig, ErrInvalidArgument, clipText(p.ID, maxErrorText), MaxProtocolIDLength)
		case p.Props == nil:
			return fmt.Errorf("%w: Protocols: %w: %s has nil Props", ErrInvalidConfig, ErrInvalidArgument, p.ID)
		case seen[p.ID]:
			return fmt.Errorf("%w: Protocols: %w: %s", ErrInvalidConfig, ErrProtocolRegistered, p.ID)
		}
		if _, err := registerOptionsOf(p.Options); err != nil {
			return fmt.Errorf("%w: Protocols: %s: %w", ErrInvalidConfig, p.ID, err)
		}
		seen[p.ID] = true
	}
	for _, p := range c.Bootstrap.Bootnodes {
		if err := checkPeerID(p.ID, p.Addr); err != nil {
			return fmt.Errorf("%w: Bootstrap.Bootnodes: %w", ErrInvalidConfig, err)
		}
	}
	positive := []struct {
		name string
		v    int64
	}{
		{"MaxInboundPeers", int64(c.MaxInboundPeers)}, {"MaxOutboundPeers", int64(c.MaxOutboundPeers)},
		{"MaxPendingHandshakes", int64(c.MaxPendingHandshakes)}, {"MaxMessageSize", int64(c.MaxMessageSize)},
		{"SendQueueBytes", int64(c.SendQueueBytes)}, {"InboundPending", int64(c.InboundPending)},
		{"InboundPendingBytes", int64(c.InboundPendingBytes)},
		{"HandshakeTimeout", int64(c.HandshakeTimeout)}, {"DialTimeout", int64(c.DialTimeout)},
		{"WriteTimeout", int64(c.WriteTimeout)}, {"PingInterval", int64(c.PingInterval)},
		{"IdleTimeout", int64(c.IdleTimeout)}, {"RequestTimeout", int64(c.RequestTimeout)},
		{"TransientIdleTimeout", int64(c.TransientIdleTimeout)}, {"DiscoveryIdleTimeout", int64(c.DiscoveryIdleTimeout)},
		{"RedialBase", int64(c.RedialBase)}, {"RedialMax", int64(c.RedialMax)},
		{"ProtocolRestartWindow", int64(c.ProtocolRestartWindow)}, {"InboundPerIPBurst", int64(c.InboundPerIPBurst)},
		{"MaxInboundPerIP", int64(c.MaxInboundPerIP)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return bad("%s must be positive, got %d", p.name, p.v)
		}
	}
	if !(c.InboundPerIPRate > 0) || math.IsInf(c.InboundPerIPRate, 1) {
		return bad("InboundPerIPRate must be positive and finite, got %v", c.InboundPerIPRate)
	}
	if c.RedialAttempts < 0 || c.ProtocolRestarts < 0 {
		return bad("RedialAttempts and ProtocolRestarts must not be negative")
	}
	if c.InboundEvictionGrace < 0 {
		return bad("InboundEvictionGrace must not be negative, got %v", c.InboundEvictionGrace)
	}
	if c.MaxMessageSize < MinMessageSize {
		return bad("MaxMessageSize (%d) is below %d bytes: discovery's answers and gossip's messages with their "+
			"metadata (gossip takes MaxMessageSize less 4 KiB) would not fit", c.MaxMessageSize, MinMessageSize)
	}
	if int64(c.MaxMessageSize) > session.MaxMessageSizeLimit {
		// Validate let it pass, and every handshake then failed.
		return bad("MaxMessageSize (%d) is over %d bytes (a message's length travels in 4 bytes)", c.MaxMessageSize,
			int64(session.MaxMessageSizeLimit))
	}
	if c.SendQueueBytes > maxQueueBytes {
		// A "no limit" near math.MaxInt overflowed with the control allowance, and the first pong disconnected the
		// peer as SLOW_PEER.
		return bad("SendQueueBytes (%d) is over %d (for no limit that matters, a few GiB will do)", c.SendQueueBytes, maxQueueBytes)
	}
	if c.SendQueueBytes < c.MaxMessageSize {
		return bad("SendQueueBytes (%d) must hold at least one message of MaxMessageSize (%d)", c.SendQueueBytes, c.MaxMessageSize)
	}
	if c.InboundPendingBytes < c.MaxMessageSize {
		return bad("InboundPendingBytes (%d) must hold at least one message of MaxMessageSize (%d)", c.InboundPendingBytes, c.MaxMessageSize)
	}
	if c.RekeyInterval != 0 && (c.RekeyInterval < session.MinRekeyInterval || c.RekeyInterval > session.MaxRekeyInterval) {
		return bad("RekeyInterval (%d) must be 0 (the default, %d frames) or in %d..%d frames", c.RekeyInterval,
			session.DefaultRekeyInterval, session.MinRekeyInterval, session.MaxRekeyInterval)
	}
	if c.PingInterval < MinPingInterval {
		return bad("PingInterval (%v) is below %v: the keepalive would flood every quiet connection", c.PingInterval, MinPingInterval)
	}
	if c.IdleTimeout <= c.PingInterval {
		return bad("IdleTimeout (%v) must exceed PingInterval (%v)", c.IdleTimeout, c.PingInterval)
	}
	if c.RedialMax < c.RedialBase {
		return bad("RedialMax (%v) is below RedialBase (%v)", c.RedialMax, c.RedialBase)
	}
	if r, b := filepath.Clean(c.Routing.StorePath), filepath.Clean(c.Bootstrap.StorePath); c.Routing.StorePath != "" &&
		c.Bootstrap.StorePath != "" && r != b {
		return bad("Routing.StorePath (%q) and Bootstrap.StorePath (%q) name different files: the table would be saved "+
			"to one and loaded from the other; set one of them", c.Routing.StorePath, c.Bootstrap.StorePath)
	}
	// The components' own errors stay reachable (errors.Is(err, gossip.ErrInvalidConfig) too).
	if err := c.Bootstrap.Validate(); err != nil {
		return fmt.Errorf("%w: Bootstrap: %w", ErrInvalidConfig, err)
	}
	if err := c.Routing.Validate(); err != nil {
		return fmt.Errorf("%w: Routing: %w", ErrInvalidConfig, err)
	}
	if err := c.Gossip.Validate(); err != nil {
		return fmt.Errorf("%w: Gossip: %w", ErrInvalidConfig, err)
	}
	// A registration must outlive two of the longest waits between renewals (3/2 of the interval each): one
	// renewal may be lost.
	// 3*iv >= TopicTTL, written so that it cannot overflow.
	if iv := c.Gossip.Router.TopicRegisterInterval; !c.DisableDiscovery && iv > 0 && iv > (c.Routing.TopicTTL-1)/3 {
		return bad("Gossip.Router.TopicRegisterInterval (%v) must stay below a third of Routing.TopicTTL (%v): a registration on a topic would lapse after one lost renewal", iv, c.Routing.TopicTTL)
	}
	return nil
}

// ConsoleLogger returns a human-readable zerolog logger on stderr at the given level, for programs and examples.
func ConsoleLogger(level zerolog.Level) zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.TimeOnly}).Level(level).With().Timestamp().Logger()
}

// peerStorePath is the peer store's file: Routing.StorePath or Bootstrap.StorePath (Validate checks they agree when
// both are set), else DataDir/peers.pb, else none. The bootstrapper loads it and the routing actor saves it: a path
// given to one of them only was saved and never loaded, or never saved.
func (c *Config) peerStorePath() string {
	if p := cmp.Or(c.Routing.StorePath, c.Bootstrap.StorePath); p != "" {
		return p
	}
	if c.DataDir != "" {
		return filepath.Join(c.DataDir, "peers.pb")
	}
	return ""
}
