package gossip

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/actormesh/actormesh/session"
)

// MsgIDSize is the size of a message id in bytes.
const MsgIDSize = 20

// MsgID identifies a message within the network, for duplicate detection, IHAVE and IWANT.
type MsgID [MsgIDSize]byte

// String returns id as lowercase hex.
func (id MsgID) String() string { return hex.EncodeToString(id[:]) }

// DefaultMsgID is the default Config.MsgID: the first MsgIDSize bytes of SHA-256 over the topic's length (8 bytes,
// big endian), the topic and the payload. Two publications of the same payload on a topic are thus one message,
// whatever their origins: the first copy validation accepts is delivered (see Config.MsgID).
func DefaultMsgID(m *Message) MsgID {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(m.Topic)))
	h.Write(n[:])
	h.Write([]byte(m.Topic))
	h.Write(m.Data)
	var sum [sha256.Size]byte
	var id MsgID
	copy(id[:], h.Sum(sum[:0]))
	return id
}

// Message is a broadcast message. The Router reads Topic and Data (through Config.MsgID), sets ID, counts Hops and
// carries the other fields untouched. Messages are shared between the Router's outputs and its cache: nobody may
// modify one, or its Data, after handing it to the Router.
type Message struct {
	// Topic is the topic the message is published on.
	Topic string
	// ID is set by the Router from Config.MsgID; a value received from the network is never trusted.
	ID MsgID
	// Data is the opaque payload.
	Data []byte
	// Origin is the node that published the message.
	Origin session.NodeID
	// Seq is the origin's sequence number: a relay numbers its publications one by one from its clock (Unix
	// nanoseconds) at its start, so that a restarted origin does not use its last run's numbers again.
	Seq uint64
	// OriginTime is when the origin published the message, in Unix nanoseconds.
	OriginTime int64
	// Hops is the number of links the message has crossed: 0 at the origin, incremented on every send.
	Hops uint32
	// Signature is the origin's signature, verified by the shell.
	Signature []byte

	idSet bool // ID was set by Router.MessageID, which HandleMessage takes as it is
}

// size estimates the memory a cached message holds.
func (m *Message) size() int { return len(m.Topic) + len(m.Data) + len(m.Signature) + 128 }

// relayed returns a copy of m with one more hop, to send on.
func (m *Message) relayed() *Message {
	c := *m
	c.Hops++
	return &c
}

// IHave announces ids of messages of one topic that the sender holds.
type IHave struct {
	Topic string
	IDs   []MsgID
	// Unread counts the ids of the received IHAVE its decoder did not read (past MaxIHaveLength, or malformed):
	// the Router counts them as received and ignored.
	Unread int
}

// Prune asks the receiver to stop the eager push on a topic. With Lazy set (the Plumtree prune) the link stays in
// both meshes and carries IHAVE only; otherwise the receiver removes the sender from its mesh and neither side
// grafts the other for Config.PruneBackoff.
type Prune struct {
	Topic string
	Lazy  bool
}

// Control is the control traffic for one peer.
type Control struct {
	// IHave lists announced ids, per topic.
	IHave []IHave
	// IWant lists ids whose messages the sender asks for.
	IWant []MsgID
	// IWantUnread counts the ids of the received IWANT its decoder did not read (past MaxIHaveLength, or
	// malformed): the Router counts them as received and limited.
	IWantUnread int
	// IHaveUnread counts the ids of the received IHAVEs its decoder did not read, those past an RPC's first
	// MaxPeerTopics IHAVEs: the Router counts them as received and ignored.
	IHaveUnread int
	// Graft lists topics on which the sender adds the receiver to its mesh as an eager link, or turns a lazy mesh
	// link eager. The receiver answers with a Prune if it refuses.
	Graft []string
	// Prune lists topics on which the sender turns the link lazy or leaves the mesh.
	Prune []Prune
	// Tree lists the sender's place in the broadcast trees of its topics (Config.Tree).
	Tree []TreeInfo
}

// Send is one thing to send to one peer: a message, or control.
type Send struct {
	To      session.NodeID
	Msg     *Message
	Control *Control
}

// Penalty reports that a peer relayed a message rejected by validation.
type Penalty struct {
	Peer session.NodeID
	// Count is the number of messages from Peer rejected so far, including this one.
	Count int
	// Ban is set when Count reaches Config.PenaltyThreshold, and again at each PenaltyThreshold more: the shell
	// should disconnect and ban Peer.
	Ban bool
	// Why is what was invalid, for the log; empty for a message rejected by validation.
	Why string
}

// Output is what the shell must do after a call: send Send in order (each peer's control comes before its
// messages), hand Deliver to the local subscribers and act on Penalize.
type Output struct {
	Send     []Send
	Deliver  []*Message
	Penalize []Penalty
	// Connect lists peers the node should connect to and keep (Config.TreeShortcutDist); the shell finds their
	// addresses.
	Connect []session.NodeID
	// Relayed lists, on a heartbeat, the peers that were the first to deliver a message the node accepted since
	// the heartbeat before, sorted: the peers worth keeping (the shell tells Network.Relayed). A peer's own
	// publications do not count: anyone can publish, so they prove no service.
	Relayed []session.NodeID
	// Discover lists, on a heartbeat, the joined topics to register on or search for in the DHT
	// (Config.TopicRegisterInterval, TopicSearchInterval).
	Discover []Discover
	// Release lists, on a heartbeat, the peers that share no topic the node joined (the node left the topic, or
	// they did, or they never were in it, since the heartbeat before): the shell need not keep a connection it made
	// only for topics (Network.DiscoverTopic) to them. Keep lists released peers that share a joined topic again:
	// the shell keeps such a connection again. See Router.PeerUpdated.
	Release, Keep []session.NodeID
	// Hello lists, on a heartbeat after the node joined a topic, the peers some of whose subscriptions went
	// untracked (past MaxPeerTopics, or unread) since the node last asked them: the shell sends them its hello
	// again, which a peer answers with its subscriptions, so that the node learns whether they are in the topic it
	// joined. A peer is listed again only if some of its answer, or of its subscriptions after, went untracked.
	Hello []session.NodeID
}

// Discover asks the shell to work on a topic in the DHT: to register the node on it, and to connect to, and keep,
// up to Want of the nodes registered on it that it is not connected to.
type Discover struct {
	Topic    string
	Register bool
	Want     int
}

// Verdict is the outcome of validating a message.
type Verdict int

// Verdicts; the zero Verdict is invalid and treated as Ignore.
const (
	// Accept delivers and relays the message.
	Accept Verdict = iota + 1
	// Reject drops the message and penalises the peer that sent it.
	Reject
	// Ignore drops the message without penalty.
	Ignore
)

// Status is what HandleMessage made of a message.
type Status int

// Statuses of HandleMessage.
const (
	// Dropped: the message was not processed (unknown peer, topic not joined, outside the freshness window, too
	// many awaiting validation) and is not recorded as seen.
	Dropped Status = iota
	// Duplicate: the message was seen before.
	Duplicate
	// Pending: the message is new and awaits a verdict through Validated.
	Pending
)

// String returns the name of s.
func (s Status) String() string {
	switch s {
	case Duplicate:
		return "duplicate"
	case Pending:
		return "pending"
	default:
		return "dropped"
	}
}

// Stats are the Router's counters since it was created. IHAVE and IWANT are counted in ids, grafts and prunes in
// topic entries. Every IWANT id received is counted once more, as served, repeated, uncached or limited; every id
// received by IHAVE that is neither seen nor wanted yet is asked for or counted in IHaveIgnored. (The relay's
// decoder reads at most MaxIHaveLength ids of an IHAVE or IWANT, and counts those it leaves, or finds malformed, in
// IHave.Unread and Control.IWantUnread: the Router counts them as ignored and limited. The IHAVEs past an RPC's
// MaxPeerTopics do not reach the Router: their ids, in Control.IHaveUnread, count as received and ignored, from
// a known peer.)
type Stats struct {
	Published  uint64 // messages published locally
	Delivered  uint64 // messages handed to local subscribers, own publications included
	Duplicates uint64 // message copies received after the first
	Dropped    uint64 // messages not processed (Status Dropped)
	Stale      uint64 // of Dropped, those outside the freshness window (Config.MaxClockSkew): late, or replayed
	Rejected   uint64 // messages rejected by validation (not those the shell refused before: PenalizePeer)
	Ignored    uint64 // messages ignored by validation, timeouts included
	TimedOut   uint64 // of Ignored, messages whose verdict did not come within ValidationTimeout
	IHaveSent  uint64
	// IHaveReceived counts the ids announced by IHAVE for joined topics, those ignored included, and every id of
	// the IHAVEs past an RPC's MaxPeerTopics, whatever their topics (Control.IHaveUnread).
	IHaveReceived uint64
	// IHaveIgnored counts, of IHaveReceived, the ids dropped for a limit rather than asked for: all of an IHAVE
	// message past its peer's MaxIHaveMessages of the heartbeat, past MaxIHaveLength in one IHAVE or past an RPC's
	// MaxPeerTopics IHAVEs, and those neither seen nor wanted already once MaxPendingIWant or the announcer's
	// MaxPendingIWantPerPeer is reached.
	IHaveIgnored  uint64
	IWantSent     uint64
	IWantReceived uint64
	IWantServed   uint64 // messages sent in answer to IWANT
	IWantRepeated uint64 // IWANT ids refused: that peer got that message maxIWantServes times already
	IWantUncached uint64 // IWANT ids refused: not in the message cache (expired, evicted, or never accepted)
	// IWantLimited counts the IWANT ids refused for a limit on replies: past MaxIHaveLength in one IWANT, past the
	// peer's MaxIWantReplies or MaxIWantReplyBytes of the heartbeat, or asked for by a peer after MaxPeers others
	// had asked for that message.
	IWantLimited uint64
	// IWantExpired counts the ids this node wanted (announced, not seen) and gave up with no copy accepted: each
	// announcer remembered was asked in turn, IWantTimeout apart, and none is left (nor connected) to ask. Either
	// no announcer sent the message, or this node refused the copies that came (Dropped: a full validation queue,
	// a stale origin time; or its validators rejected or ignored them): read it beside Dropped.
	IWantExpired   uint64
	GraftsSent     uint64
	GraftsReceived uint64
	PrunesSent     uint64 // lazy prunes included
	PrunesReceived uint64
	TreeReports    uint64 // tree reports sent (Config.Tree), one per peer and topic
	TreeShortcuts  uint64 // connections asked for to shorten the route to the root (Config.TreeShortcutDist)
	TreeMoves      uint64 // changes of the node's place in a topic's tree (root, root's rank, parent or distance)
	TreeDamped     uint64 // changes of place reported on the next heartbeat rather than at once (damping)
	TreeCuts       uint64 // broken tree links (TreeCut) found (the parent lost) or first heard of
	TreeDistrusted uint64 // roots given up for withholding messages (most messages came repaired)
	TreeShunned    uint64 // parents left for withholding messages (most messages came repaired), before any root
	TreeCrossed    uint64 // copies pushed to peers of another root's tree (crossLinks), while the tree changes root
	// TreeBeaconsChecked counts the signatures of roots' beacons checked (Config.TreeVerify), TreeBadBeacons the
	// reports refused for a signature that did not hold (their senders penalised) or that was missing.
	TreeBeaconsChecked, TreeBadBeacons uint64
	// TreeBeaconsUnpaid counts the beacon signature checks left undone for their sender's control budget
	// (HandleControlPaid): their beacons wait for a later report.
	TreeBeaconsUnpaid uint64
	// SubscriptionsUntracked counts the subscriptions peers announced that the node did not track: refused or
	// evicted past MaxPeerTopics (PeerSubscribed), or left unread by the relay (MissedSubscriptions: of an RPC its
	// control budget refused, every entry past the first twice MaxPeerTopics, unsubscriptions included, as they are
	// not looked at). A list sent again counts again: a peer in more topics than that adds to it at each of its
	// hellos and of its answers to the node's (Output.Hello).
	SubscriptionsUntracked uint64
	// TopicRegistrations and TopicSearches count the registrations on a topic in the DHT and the searches for its
	// nodes asked for (Output.Discover); TopicLookupsFailed the lookups the shell reported failed
	// (TopicLookupDone).
	TopicRegistrations, TopicSearches, TopicLookupsFailed uint64
	// Heartbeats counts the heartbeats run.
	Heartbeats uint64
}
