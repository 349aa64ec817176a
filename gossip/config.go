package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// ErrInvalidConfig is wrapped by the errors of Config.Validate and NewRouter.
var ErrInvalidConfig = errors.New("gossip: invalid config")

// Config holds the parameters of a Router. Start from DefaultConfig; the zero value is not valid. Peers of one
// network should share the timing parameters (PruneBackoff in particular, which both ends of a prune apply).
type Config struct {
	// D is the target number of mesh links per topic (default 6).
	D int
	// Dlo is the mesh size below which a heartbeat grafts peers up to D (default 4).
	Dlo int
	// Dhi is the mesh size above which a heartbeat prunes peers down to D, lazy links first (default 12).
	Dhi int
	// Dlazy is how many random topic peers outside the mesh receive IHAVE per topic and heartbeat, on top of the
	// lazy mesh links (default 6 here; the relay's DefaultRelayConfig sets 2).
	Dlazy int

	// HeartbeatInterval is how often the shell calls Heartbeat (default 1s). The Router itself only counts
	// heartbeats.
	HeartbeatInterval time.Duration
	// GossipDelay is the age a message must reach before its id is announced by IHAVE, so that peers about to
	// receive it over the eager tree are not made to pull it (default 500ms).
	GossipDelay time.Duration
	// HistoryGossip is the number of heartbeats that announce each id, each to fresh random peers (default 1).
	HistoryGossip int
	// MeshGossipBeats is how often, in heartbeats, each mesh link hears IHAVE while the gossip is quiet: while the
	// node has neither answered an IWANT nor pulled a message for HistoryLength heartbeats (default 1: at every
	// heartbeat; the relay's DefaultRelayConfig sets 2). At 2, the links take turns, each hearing every other heartbeat of the ids of both: a sound tree
	// needs no repair, and the announcements are insurance. Each mesh link hears of each id once, whatever the
	// rhythm.
	MeshGossipBeats int
	// HistoryLength is the number of heartbeats a message stays in the cache that answers IWANT (default 5).
	HistoryLength int
	// CacheMaxMessages caps the message cache in messages (default 4096).
	CacheMaxMessages int
	// CacheMaxBytes caps the message cache in payload bytes (default 16 MiB); the relay needs room for a message of
	// its MaxMessageSize (RelayConfig.Validate).
	CacheMaxBytes int

	// SeenTTL is how long a message id is remembered to recognise duplicates (default 2m). A message whose
	// OriginTime is older than SeenTTL - MaxClockSkew is dropped, so that no copy is taken once its id may be
	// forgotten: a replay of a message delivered before is refused.
	SeenTTL time.Duration
	// SeenMax caps the seen-cache in ids, the oldest forgotten first (default 32768, about 2 MiB at most). Known
	// limit: ids forgotten for the count within SeenTTL are not protected by the freshness window, so a peer that
	// makes the node see SeenMax new messages (as an origin itself, 16 s at the relay's per-peer rate) can then
	// replay a message still within the window and have it delivered again. Applications for which a replay
	// matters make their payloads idempotent (a sequence number per origin, say).
	SeenMax int
	// MaxClockSkew is the clock difference between nodes the freshness window allows for (default 30s): a message
	// whose OriginTime is more than MaxClockSkew ahead of the node's clock, or older than SeenTTL - MaxClockSkew,
	// is dropped (Stats.Stale) without penalty: a slow network or a wrong clock, not necessarily a hostile peer.
	// SeenTTL must exceed twice MaxClockSkew.
	MaxClockSkew time.Duration

	// PruneDuplicates is the number of consecutive duplicates (with no first copy in between) an eager link must
	// push before it is turned lazy (default 3). 1 is Plumtree's rule, which forms shallower trees but, when many
	// messages are in flight at once, over-prunes and keeps the tree in repair; 3 converged in all simulations up
	// to 20 messages per second over 300 nodes.
	PruneDuplicates int
	// PruneBackoff is how long after a prune a peer may not be grafted again on that topic (default 1m).
	PruneBackoff time.Duration
	// MaxIHaveLength caps the ids in one IHAVE or IWANT, sent or read (default 500; at most
	// messages.MaxGossipRPCIDs, the ids peers take in one RPC).
	MaxIHaveLength int
	// MaxIHaveMessages caps the IHAVE messages read from one peer per heartbeat (default 10, gossipsub's): the IHAVEs
	// of one RPC, whatever their topics, are one message (an honest peer sends one a heartbeat).
	MaxIHaveMessages int
	// MaxIWantReplies caps the messages served to one peer per heartbeat in answer to IWANT (default 256).
	MaxIWantReplies int
	// MaxIWantReplyBytes caps the bytes of the messages served to one peer per heartbeat in answer to IWANT, as
	// Message sizes count them (default 4 MiB): a peer asking for large messages cannot make the node send more.
	MaxIWantReplyBytes int
	// IWantTimeout is how long an IWANT may stay unanswered before the next announcer is asked (default 500ms).
	IWantTimeout time.Duration
	// MaxPendingIWant caps the message ids wanted at once (default 4096).
	MaxPendingIWant int
	// MaxPendingIWantPerPeer caps the message ids wanted at once that one peer announced first (default 512, at
	// most MaxPendingIWant): a peer announcing ids nobody else has cannot keep the others' announcements from
	// being asked for.
	MaxPendingIWantPerPeer int

	// ValidationTimeout is how long a message may await its verdict; it is then ignored (default 5s).
	ValidationTimeout time.Duration
	// MaxPendingValidation caps the messages awaiting a verdict; new messages beyond it are dropped unseen, so
	// that they can still be pulled later (default 1024).
	MaxPendingValidation int
	// MaxPendingValidationPerPeer caps the messages from one peer awaiting a verdict, the others dropped unseen as
	// beyond MaxPendingValidation (default 256): a peer sending messages that keep a slow validator busy cannot take
	// every place and stop the other peers' messages from being validated.
	MaxPendingValidationPerPeer int
	// MaxPendingValidationBytes and MaxPendingValidationBytesPerPeer cap the same in payload bytes (defaults 32 MiB
	// and 8 MiB): behind a slow validator, the counts alone let one peer hold 256 messages of the largest size
	// (128 MiB at the relay's 512 KiB) and the node 512 MiB. A message is always taken when nothing of its peer,
	// or nothing at all, awaits a verdict.
	MaxPendingValidationBytes        int
	MaxPendingValidationBytesPerPeer int
	// PenaltyThreshold is the number of rejected messages from one peer at which its Penalty asks for a ban
	// (default 3).
	PenaltyThreshold int
	// PenaltyRetention is how long a peer's count of rejected messages outlives its connection (default 10 min):
	// a peer that reconnects takes it up again, so that reconnecting does not wipe its record (gossipsub's
	// RetainScore does the same). At most MaxPeers departed peers are remembered.
	PenaltyRetention time.Duration

	// MaxTopicLength caps a topic name in bytes (default 256). Subscribe and Publish fail with ErrTopicTooLong
	// beyond it; the Router tracks no longer topic from a peer, and the relay drops an RPC naming one and
	// penalises its sender.
	MaxTopicLength int

	// MaxPeers caps the peers the Router tracks (default 1024).
	MaxPeers int
	// MaxPeerTopics caps the subscriptions tracked per peer and the topics the node joins (default 64): Join, and
	// the relay's Subscribe of a new topic, fail with ErrLimit past it, so that two nodes share at most that many
	// topics. A peer's subscription to a topic the node joined is always tracked (one of its topics the node has
	// not joined makes room); past it, the peer's others are not. Of a peer's RPC, the relay reads the first twice
	// MaxPeerTopics subscriptions, and of the rest those of the node's topics.
	MaxPeerTopics int

	// Tree makes the eager links of each joined topic follow a spanning tree rooted at the topic's live node of
	// the highest rank (with TreeRanked, its topic peers in steps of four, see TreeRank; 0 otherwise), then the
	// smallest id; a node of a root's tree takes the root over only past one step above its rank: every node reports its (root, root's rank, root beacon, distance, whether the receiver is its
	// parent, the first 4 bytes of the ids of the nodes on its route) to its tree links every second heartbeat, to
	// its other topic peers every 2 x TreeStaleBeats - 2, and to all at once on a change, and takes as
	// parent the peer closest to the root whose route does not run through itself, so the tree is a breadth-first
	// tree over all topic peers and a message crosses at most twice its depth. Duplicates are then not needed to
	// shape the tree (no Plumtree prunes); the mesh and IHAVE/IWANT still repair what the tree misses. Requires
	// Self. Default false here; the relay's DefaultRelayConfig turns it on.
	Tree bool
	// Self is the local node's id (required with Tree).
	Self session.NodeID
	// TreeSign signs this node's tree beacons (AppendBeaconSignedBytes) with its identity key, whose public half is
	// Self; the relay sets it. A node's reports of the tree it roots then carry the signature (TreeInfo.Sig), and
	// its reports of another root relay that root's. Nil: reports carry no signature.
	TreeSign func(msg []byte) []byte
	// TreeVerify takes a root's beacon and rank from a peer's report only if the root's signature of them holds
	// (TreeInfo.Sig). A report with a signature that does not hold is refused and its sender penalised
	// (Output.Penalize), since an honest node relays only beacons it checked; one without a signature is refused
	// only. Without it, any peer could set a root's rank for the whole network, or
	// keep a dead root looking alive. Requires Tree and TreeSign. Default false here; the relay sets it from
	// RelayConfig.VerifySignatures, and TreeSign and Self from its Network.
	TreeVerify bool
	// TreeRanked makes each node announce a rank from its topic peers (see Tree), so that the tree hangs from the
	// best-connected node and is shallower: at N = 200, mean hops 3.6 instead of 4.2. Default false here; the
	// relay's DefaultRelayConfig turns it on.
	TreeRanked bool
	// TreeStaleBeats is the number of heartbeats without news of the root (its beacon not advancing) after which
	// a node gives the root up (default 5, at most MaxTreeStaleBeats). A peer's tree report is used for
	// 2 x TreeStaleBeats - 1 heartbeats; the reports to the topic peers that are not tree links come a heartbeat
	// before that.
	TreeStaleBeats int
	// PublishFanout is how many topic peers besides its tree links a publisher pushes a new message to (Tree),
	// chosen at random per message. Each starts a branch of the tree nearer to the far nodes, which cuts the hops to
	// the last receiver; branches meet, so each costs about two duplicates. Default 0 here; the relay's
	// DefaultRelayConfig sets it.
	PublishFanout int
	// TreeShortcutDist is the route length (hops to the root) from which a node connects to its parent's parent,
	// shortening its route by one: a parent tells its children at that distance its own parent in its reports, and
	// such a child asks the shell for a connection to it (Output.Connect) once its place has stayed the same for 5
	// heartbeats, at most once every TreeShortcutInterval per topic, never while its last shortcut is still
	// connected, and only over a thin last layer (TreeShortcutShare). The breadth-first tree of a random graph has a thin last layer; at N = 200
	// it holds about a tenth of the nodes, and lifting it removes a hop from most messages' slowest path. 0 turns
	// it off (default 0 here; the relay's DefaultRelayConfig sets 3). Requires Tree.
	TreeShortcutDist int
	// TreeShortcutInterval is the least time between two shortcut requests of one topic (default 30s).
	TreeShortcutInterval time.Duration
	// TreeShortcutShare is the largest share of the tree's nodes at TreeShortcutDist or more for which shortcuts are
	// taken (default 0.25): the nodes count their subtrees up the tree and the root's totals come down in the
	// reports (TreeInfo.Size, Deep). Only a thin last layer is worth lifting: at N = 1000 about two thirds of the
	// nodes are 3 hops deep, and shortcuts for all of them piled up on the few nodes a hop from the root, moved the
	// root and made p100 worse. Like ranks, the counts are claimed, not proven: a peer lying about them can at most
	// make nodes take or skip one shortcut each.
	TreeShortcutShare float64

	// TopicRegisterInterval is how often, on average, a node registers on each topic it joined in the DHT, so
	// that nodes of the topic that have too few topic peers find it there (Output.Discover): while the topic is
	// sparse around it (fewer than Dlo topic peers, or fewer than half its peers in the topic), from
	// TopicSearchInterval after the join on, each wait drawn from [1/2, 3/2] of it. A registration of a node that
	// has at least Dlo but fewer than Dhi topic peers also asks for one more of the registered nodes (Want 1), so
	// that members that found each other in groups do not stay islands. A topic most of its peers share is found
	// by connecting to anybody, and costs no registration. It must stay below a third of the registrations'
	// lifetime in the DHT (routing.Config.TopicTTL, 30m by default), so that one renewal lost (a lookup that
	// failed) does not let a registration lapse. 0 turns registering off (default 0 here; the relay's
	// DefaultRelayConfig sets 8m).
	TopicRegisterInterval time.Duration
	// TopicSearchInterval is the least wait between two searches of the DHT for a topic's registered nodes while
	// the node has fewer than Dlo topic peers (Output.Discover with Want). The first comes TopicSearchInterval
	// after the join, and the node does not register before either: nodes that join a network and a topic
	// together find topic peers among their ordinary connections as those come up. The wait doubles after each
	// search up to 32 times this; once the topic had Dlo peers, a node that falls short again searches at once
	// and the waits start over. 0 turns searching off (default 0 here; the relay's DefaultRelayConfig sets 5s).
	TopicSearchInterval time.Duration

	// MsgID computes the id of a message; nil means DefaultMsgID. It must depend only on fields fixed by the
	// origin (never on ID or Hops) and must not modify the message. With content ids (DefaultMsgID: topic and
	// payload) copies of one payload signed by different origins are one message: the first copy that passes
	// validation wins, and its origin is the one delivered (a copy rejected or ignored is forgotten, so it cannot
	// suppress a genuine one). Applications that need identity bound to the origin set a MsgID that includes
	// Origin (and Seq).
	MsgID func(*Message) MsgID
}

// DefaultConfig returns the default configuration, documented field by field on Config.
func DefaultConfig() Config {
	return Config{
		D:                                6,
		Dlo:                              4,
		Dhi:                              12,
		Dlazy:                            6,
		HeartbeatInterval:                time.Second,
		GossipDelay:                      500 * time.Millisecond,
		HistoryGossip:                    1,
		MeshGossipBeats:                  1,
		HistoryLength:                    5,
		CacheMaxMessages:                 4096,
		CacheMaxBytes:                    16 << 20,
		SeenTTL:                          2 * time.Minute,
		SeenMax:                          32768,
		MaxClockSkew:                     30 * time.Second,
		PruneDuplicates:                  3,
		PruneBackoff:                     time.Minute,
		MaxIHaveLength:                   500,
		MaxIHaveMessages:                 10,
		MaxIWantReplies:                  256,
		MaxIWantReplyBytes:               4 << 20,
		IWantTimeout:                     500 * time.Millisecond,
		MaxPendingIWant:                  4096,
		MaxPendingIWantPerPeer:           512,
		ValidationTimeout:                5 * time.Second,
		MaxPendingValidation:             1024,
		MaxPendingValidationPerPeer:      256,
		MaxPendingValidationBytes:        32 << 20,
		MaxPendingValidationBytesPerPeer: 8 << 20,
		PenaltyThreshold:                 3,
		PenaltyRetention:                 10 * time.Minute,
		MaxTopicLength:                   256,
		MaxPeers:                         1024,
		MaxPeerTopics:                    64,
		TreeStaleBeats:                   5,
		TreeShortcutInterval:             30 * time.Second,
		TreeShortcutShare:                0.25,
	}
}

// MaxTreeStaleBeats bounds Config.TreeStaleBeats (a million heartbeats, 11 days at the default heartbeat): the tree's
// periods are multiples of it, and a huge one overflowed them.
const MaxTreeStaleBeats = 1 << 20

// Validate reports the first inconsistency in c, as an error wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	f := func(name string, v any) session.Field { return session.Field{Name: name, Value: v} }
	if err := session.CheckPositive(
		f("HeartbeatInterval", c.HeartbeatInterval), f("SeenTTL", c.SeenTTL), f("PruneBackoff", c.PruneBackoff),
		f("IWantTimeout", c.IWantTimeout), f("ValidationTimeout", c.ValidationTimeout),
		f("CacheMaxMessages", c.CacheMaxMessages), f("CacheMaxBytes", c.CacheMaxBytes), f("SeenMax", c.SeenMax),
		f("MaxIHaveLength", c.MaxIHaveLength), f("MaxIHaveMessages", c.MaxIHaveMessages),
		f("MaxIWantReplies", c.MaxIWantReplies), f("MaxIWantReplyBytes", c.MaxIWantReplyBytes),
		f("MaxPendingIWant", c.MaxPendingIWant), f("MaxPendingValidation", c.MaxPendingValidation),
		f("MaxPendingValidationPerPeer", c.MaxPendingValidationPerPeer),
		f("MaxPendingValidationBytes", c.MaxPendingValidationBytes),
		f("MaxPendingValidationBytesPerPeer", c.MaxPendingValidationBytesPerPeer),
		f("PenaltyThreshold", c.PenaltyThreshold), f("PruneDuplicates", c.PruneDuplicates), f("MaxPeers", c.MaxPeers),
		f("MaxPeerTopics", c.MaxPeerTopics), f("MaxTopicLength", c.MaxTopicLength), f("TreeStaleBeats", c.TreeStaleBeats),
	); err != nil {
		return bad("%v", err)
	}
	switch {
	case c.HeartbeatInterval < time.Millisecond: // a heartbeat every nanosecond ran back to back
		return bad("HeartbeatInterval = %v, want at least 1ms", c.HeartbeatInterval)
	case c.TreeStaleBeats > MaxTreeStaleBeats: // the tree's periods are multiples of it (16x, 4x): a huge one wrapped
		return bad("TreeStaleBeats = %d, want at most %d", c.TreeStaleBeats, MaxTreeStaleBeats)
	case c.MaxIHaveLength > messages.MaxGossipRPCIDs: // a peer refuses an RPC of more ids, and one IHAVE is not split
		return bad("MaxIHaveLength = %d, want at most %d", c.MaxIHaveLength, messages.MaxGossipRPCIDs)
	case c.D < 1:
		return bad("D = %d, want >= 1", c.D)
	case c.Dlo < 0 || c.Dlo > c.D || c.Dhi < c.D:
		return bad("want 0 <= Dlo <= D <= Dhi, got Dlo = %d, D = %d, Dhi = %d", c.Dlo, c.D, c.Dhi)
	case c.Dlazy < 0:
		return bad("Dlazy = %d, want >= 0", c.Dlazy)
	case c.GossipDelay < 0:
		return bad("GossipDelay must not be negative, got %v", c.GossipDelay)
	case c.ValidationTimeout >= c.SeenTTL:
		// A message awaiting its verdict is known by its pending entry, but once decided it must still be seen.
		return bad("ValidationTimeout %v must be under SeenTTL %v", c.ValidationTimeout, c.SeenTTL)
	case c.MaxClockSkew <= 0 || c.MaxClockSkew >= c.SeenTTL-c.MaxClockSkew: // 2*MaxClockSkew could overflow
		return bad("want 0 < MaxClockSkew and 2 * MaxClockSkew < SeenTTL, got %v and %v", c.MaxClockSkew, c.SeenTTL)
	case c.TopicRegisterInterval < 0 || c.TopicSearchInterval < 0:
		return bad("TopicRegisterInterval and TopicSearchInterval must not be negative (0: off)")
	case c.PublishFanout < 0:
		return bad("PublishFanout = %d, want >= 0", c.PublishFanout)
	case c.TreeShortcutDist < 0 || c.TreeShortcutDist == 1:
		return bad("TreeShortcutDist = %d, want 0 (off) or >= 2", c.TreeShortcutDist)
	case c.TreeShortcutDist > 0 && (!c.Tree || c.TreeShortcutInterval <= 0 || !(c.TreeShortcutShare > 0 && c.TreeShortcutShare <= 1)):
		return bad("TreeShortcutDist needs Tree, a positive TreeShortcutInterval and a TreeShortcutShare in (0, 1]")
	case c.HistoryGossip < 1 || c.HistoryLength <= c.HistoryGossip:
		return bad("want 1 <= HistoryGossip < HistoryLength, got %d and %d", c.HistoryGossip, c.HistoryLength)
	case c.MeshGossipBeats < 1 || c.HistoryLength <= c.HistoryGossip+c.MeshGossipBeats-1:
		return bad("want 1 <= MeshGossipBeats, HistoryGossip + MeshGossipBeats - 1 < HistoryLength, got %d, %d and %d",
			c.MeshGossipBeats, c.HistoryGossip, c.HistoryLength)
	case c.GossipDelay >= time.Duration(c.HistoryLength-c.HistoryGossip-c.MeshGossipBeats+1)*c.HeartbeatInterval:
		return bad("GossipDelay %v leaves no time to announce within HistoryLength heartbeats", c.GossipDelay)
	case c.MaxPendingIWantPerPeer < 1 || c.MaxPendingIWantPerPeer > c.MaxPendingIWant:
		return bad("want 1 <= MaxPendingIWantPerPeer <= MaxPendingIWant, got %d and %d", c.MaxPendingIWantPerPeer, c.MaxPendingIWant)
	case c.PenaltyRetention < 0:
		return bad("PenaltyRetention must not be negative, got %v", c.PenaltyRetention)
	}
	return nil
}
