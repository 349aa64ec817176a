package actors

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Stats are a node's traffic and health counters since Start, as Node.Stats returns them. Counters only grow;
// the gauges (Peers*, QueuedBytes) describe the moment of the call.
type Stats struct {
	// PeersInbound and PeersOutbound count the live connections by direction.
	PeersInbound, PeersOutbound int
	// BytesIn and BytesOut count transport bytes (encrypted frames with their headers) read and written on
	// connections, handshakes excluded.
	BytesIn, BytesOut uint64
	// MessagesIn counts direct messages received per protocol (gossip and routing included). Messages for a
	// protocol the node has not registered count under UnknownProtocol; a reply counts under its request's
	// protocol, which the node sent to, served here or not; a reply naming a protocol the node never sent to, or
	// one counted under OtherProtocol in MessagesOut, counts under UnknownProtocol; past MaxProtocolLabels
	// distinct protocols, the others count under OtherProtocol.
	MessagesIn map[string]uint64
	// MessagesOut counts direct messages sent per protocol, replies (Reply, ReplyError) included; past
	// MaxProtocolLabels distinct protocols, the others count under OtherProtocol. Two kinds of answers the node
	// makes itself are not counted here: the error replies to a request it hands to no protocol actor
	// (InboundDropped's unknown_protocol, type_refused, bad_payload and protocol_stopped: their protocol names are
	// the peer's to choose), and the OVERLOADED answer in place of a reply that did not fit (SendsOverloaded). A
	// requester may thus count a reply in MessagesIn that the replier did not count in MessagesOut.
	MessagesOut map[string]uint64
	// HandshakeFailures counts failed dials and inbound and outbound handshakes by reason: "dial" (the
	// connection could not be opened), "timeout", "wrong_peer", "network_mismatch", "version_mismatch",
	// "bad_signature", "refused" (the peer closed the connection or sent garbage during the handshake), "evicted"
	// (an inbound handshake closed to make room when MaxPendingHandshakes were in progress) or "other". Every
	// reason is present, 0 until it happens.
	HandshakeFailures map[string]uint64
	// Disconnects counts closed connections by DisconnectReason name (e.g. "DISCONNECT_REASON_SLOW_PEER"). Every
	// reason is present, 0 until it happens.
	Disconnects map[string]uint64
	// QueuedBytes is what waits in the outbound queues of all connections now, batches being written included.
	QueuedBytes int
	// PendingHandshakes is how many handshakes are in progress now, dialed and accepted (the accepted ones at most
	// Config.MaxPendingHandshakes, with those closed to make room until they end).
	PendingHandshakes int
	// QueueDropped counts queued outbound messages that were never written: left in the queue of a connection
	// that closed, in a batch or final flush whose write failed, or over MaxMessageSize (a bug, logged). A failed
	// write counts its whole batch, though the socket may have taken the batch's first messages before it failed
	// (the peer then reads those): an upper bound of what was lost.
	QueueDropped uint64
	// ActorRestarts counts the failures (panics) of the node's supervised actors: protocol actors, the routing
	// table, the gossip relay. Each is restarted, unless it failed too often within its window and was stopped.
	ActorRestarts uint64
	// InboundEvicted counts inbound connections closed to make room for a newcomer when every inbound slot was
	// taken (see Config.DisableInboundEviction).
	InboundEvicted uint64
	// SendsHeldBack counts the Sends and Requests that waited for room in their peer's window for the protocol
	// (flow control: the peer's actor for it was behind; see Config.InboundPending).
	SendsHeldBack uint64
	// SendsOverloaded counts the Sends and Requests that failed with ErrOverloaded, nothing sent: the window stayed
	// closed, or the connection's send queue stayed half full, until their context ended; and the replies that
	// did not fit the queue (Inbound.Reply), of which the requester got an OVERLOADED error instead.
	SendsOverloaded uint64
	// InboundDropped counts the messages peers sent that the node read and handed to no protocol actor, by
	// reason: "closing" (read from a connection this node was closing, e.g. after Disconnect or Ban: the peer sent
	// them before it read the goodbye; every kind of message counts; and the message that overran its flow-control
	// window, over which the node closes the connection), "protocol_stopped" (their protocol actor had
	// stopped for good, or stopped with them in its mailbox; or so did the protocol actor another passed them on
	// to), "unknown_protocol", "type_refused" (a payload type
	// the protocol does not Accept) and "bad_payload" (undecodable). A request refused for its protocol or payload
	// was answered with an error, and one dropped on a closing connection fails at the requester with the
	// connection; a one-way message's sender learned nothing, so this is where its loss shows. Every reason is
	// listed.
	InboundDropped map[string]uint64
	// DuplicatesCutShort counts the losing connections of simultaneous dials this node closed before the peer
	// said goodbye or half-closed them: it waited IdleTimeout for that (or the connection failed first). What the
	// peer still sent on such a connection, its Sends having returned nil, is lost, and neither side counts those
	// messages (this node never read them); each is logged at warn too. ~0 between honest peers: a steady rate
	// means peers stalled past IdleTimeout, or that never answer a goodbye.
	DuplicatesCutShort uint64
}

// inboundDrop is a reason of Stats.InboundDropped.
type inboundDrop int

const (
	dropClosing inboundDrop = iota
	dropStopped
	dropUnknown
	dropType
	dropPayload
	numInboundDrops
)

var inboundDropLabels = [numInboundDrops]string{"closing", "protocol_stopped", "unknown_protocol", "type_refused", "bad_payload"}

// Labels the counters of Stats use for what does not have a name of its own.
const (
	// UnknownProtocol is the MessagesIn label of messages for a protocol this node does not serve.
	UnknownProtocol = "unknown"
	// OtherProtocol is the MessagesIn and MessagesOut label of protocols beyond MaxProtocolLabels.
	OtherProtocol = "other"
	// MaxProtocolLabels bounds the distinct protocol names counted in MessagesIn and MessagesOut.
	MaxProtocolLabels = 64
)

// handshakeFailureLabels are the Stats.HandshakeFailures labels: handshakeFailureReason's and the peer manager's.
var handshakeFailureLabels = [...]string{"dial", "timeout", "wrong_peer", "network_mismatch", "version_mismatch",
	"bad_signature", "refused", "evicted", "other"}

// handshakeFailureReason is the Stats.HandshakeFailures label of a failed handshake.
func handshakeFailureReason(err error) string {
	switch {
	case errors.Is(err, session.ErrHandshakeTimeout):
		return "timeout"
	case errors.Is(err, session.ErrWrongPeer):
		return "wrong_peer"
	case errors.Is(err, session.ErrNetworkMismatch):
		return "network_mismatch"
	case errors.Is(err, session.ErrVersionMismatch):
		return "version_mismatch"
	case errors.Is(err, session.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, session.ErrHandshake):
		return "refused"
	default:
		return "other"
	}
}

// nodeStats holds the counters of one node. Every field is safe for concurrent use.
type nodeStats struct {
	// closedBytesIn and closedBytesOut hold the bytes of connections already closed; the live ones are summed
	// when Stats is read.
	closedBytesIn, closedBytesOut  atomic.Uint64
	queueDropped                   atomic.Uint64
	restarts                       atomic.Uint64
	inboundEvicted                 atomic.Uint64
	pendingHandshakes              atomic.Int64
	sendsHeldBack, sendsOverloaded atomic.Uint64
	duplicatesCutShort             atomic.Uint64
	inboundDropped                 [numInboundDrops]atomic.Uint64
	messagesIn                     labelCounters
	messagesOut                    labelCounters
	handshakeFailures              labelCounters
	disconnects                    labelCounters
}

func newNodeStats() *nodeStats {
	return &nodeStats{
		messagesIn:        labelCounters{limit: MaxProtocolLabels + 1, other: OtherProtocol, own: UnknownProtocol},
		messagesOut:       labelCounters{limit: MaxProtocolLabels, other: OtherProtocol},
		handshakeFailures: labelCounters{limit: 16, other: "other"},
		disconnects:       labelCounters{limit: len(messages.DisconnectReason_name) + 1, other: "other"},
	}
}

// connDone adds what a finished connection did after it left the peer set: its last bytes, the messages it never
// wrote, those it read and dropped, whether it was cut short as a duplicate and its disconnect reason. pc.done must
// be closed.
func (s *nodeStats) connDone(pc *peerConn) {
	s.closedBytesIn.Add(pc.sc.BytesRead() - pc.countedIn)
	s.closedBytesOut.Add(pc.sc.BytesWritten() - pc.countedOut)
	s.queueDropped.Add(uint64(pc.dropped))
	s.inboundDropped[dropClosing].Add(uint64(pc.drained))
	if pc.cutShort {
		s.duplicatesCutShort.Add(1)
	}
	s.disconnects.inc(pc.reason.String())
}

// labelCounters counts events by label, with at most limit labels: the others count under other.
type labelCounters struct {
	mu    sync.RWMutex
	m     map[string]*atomic.Uint64
	limit int    // labels counted, other included (own aside)
	other string // the label of what comes past limit
	own   string // a label always counted under its own name, beside limit (optional)
}

func (c *labelCounters) inc(label string) { c.counter(label).Add(1) }

// counter returns the counter of label, creating it (at zero) if needed: a caller may create it before the event
// it counts, so that has sees the label as soon as the event can have effects.
func (c *labelCounters) counter(label string) *atomic.Uint64 {
	c.mu.RLock()
	v := c.m[label]
	c.mu.RUnlock()
	if v == nil {
		c.mu.Lock()
		if c.m == nil {
			c.m = make(map[string]*atomic.Uint64)
		}
		if v = c.m[label]; v == nil {
			n := len(c.m)
			if c.own != "" && c.m[c.own] != nil {
				n--
			}
			if n >= c.limit-1 && label != c.other && label != c.own {
				label = c.other
			}
			if v = c.m[label]; v == nil {
				v = new(atomic.Uint64)
				c.m[label] = v
			}
		}
		c.mu.Unlock()
	}
	return v
}

// has tells whether label is counted under its own name.
func (c *labelCounters) has(label string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[label] != nil
}

func (c *labelCounters) snapshot() map[string]uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v.Load()
	}
	return out
}

// Stats returns the node's counters (see Stats). It is cheap enough to call on every metrics scrape.
func (n *Node) Stats() Stats {
	s := Stats{
		MessagesIn:         n.stats.messagesIn.snapshot(),
		MessagesOut:        n.stats.messagesOut.snapshot(),
		HandshakeFailures:  n.stats.handshakeFailures.snapshot(),
		Disconnects:        n.stats.disconnects.snapshot(),
		QueueDropped:       n.stats.queueDropped.Load(),
		ActorRestarts:      n.stats.restarts.Load(),
		InboundEvicted:     n.stats.inboundEvicted.Load(),
		PendingHandshakes:  int(n.stats.pendingHandshakes.Load()),
		SendsHeldBack:      n.stats.sendsHeldBack.Load(),
		SendsOverloaded:    n.stats.sendsOverloaded.Load(),
		DuplicatesCutShort: n.stats.duplicatesCutShort.Load(),
		InboundDropped:     make(map[string]uint64, numInboundDrops),
	}
	for i, label := range inboundDropLabels {
		s.InboundDropped[label] = n.stats.inboundDropped[i].Load()
	}
	// Every reason is there from the start, 0 until it happens: a dashboard or an alert on a reason finds its
	// series before the first failure.
	for _, label := range handshakeFailureLabels {
		if _, ok := s.HandshakeFailures[label]; !ok {
			s.HandshakeFailures[label] = 0
		}
	}
	for _, label := range messages.DisconnectReason_name {
		if _, ok := s.Disconnects[label]; !ok {
			s.Disconnects[label] = 0
		}
	}
	n.peers.sum(&s)
	return s
}

// countingDecider is protoactor's default decider (restart the failed child) that also counts the restart.
func (n *Node) countingDecider(reason any) actor.Directive {
	n.stats.restarts.Add(1)
	return actor.DefaultDecider(reason)
}
