package gossip

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// signContext prefixes every signed message, so that a gossip signature can never be mistaken for another one
// made with the same identity key (node records, handshakes).
const signContext = "actormesh-gossip-v1\x00"

// SignedBytes returns what the origin of m signs: a context string, then the topic, origin, sequence number,
// origin time and data, each length-prefixed or fixed-size. The hop count is not signed (relays increment it).
func SignedBytes(m *Message) []byte { return AppendSignedBytes(nil, m) }

// AppendSignedBytes appends SignedBytes(m) to b (a buffer reused across messages spares an allocation each).
func AppendSignedBytes(b []byte, m *Message) []byte {
	b = slices.Grow(b, len(signContext)+8+len(m.Topic)+len(m.Origin)+24+len(m.Data))
	b = append(b, signContext...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(m.Topic)))
	b = append(b, m.Topic...)
	b = append(b, m.Origin[:]...)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(m.OriginTime))
	b = binary.BigEndian.AppendUint64(b, uint64(len(m.Data)))
	return append(b, m.Data...)
}

// beaconContext prefixes a signed tree beacon, as signContext does a message.
const beaconContext = "actormesh-gossip-beacon-v1\x00"

// AppendBeaconSignedBytes appends to b what the root of a topic's tree signs for one of its beacons
// (TreeInfo.Sig): a context string, then the topic, the root, the rank it announces and the beacon, each
// length-prefixed or fixed-size.
func AppendBeaconSignedBytes(b []byte, topic string, root session.NodeID, rank int, seq uint64) []byte {
	b = slices.Grow(b, len(beaconContext)+8+len(topic)+len(root)+12)
	b = append(b, beaconContext...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(topic)))
	b = append(b, topic...)
	b = append(b, root[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(rank))
	return binary.BigEndian.AppendUint64(b, seq)
}

// RPCMessageOverhead is the most room a message's metadata takes in an RPC besides its data, its topic included
// (Router.MaxTopicLength is at most maxRelayTopicLength): RelayConfig.MaxRPCSize must exceed MaxMessageSize by that
// much.
const RPCMessageOverhead = 1 << 10

// maxRelayTopicLength is the largest Config.MaxTopicLength the relay takes: the rest of RPCMessageOverhead holds
// the other fields of a message (origin, signature, numbers, tags and length prefixes: under 200 bytes).
const maxRelayTopicLength = 800

// messageWireSize is the size of m as an entry of GossipRPC.messages (tag and length prefix included), counted
// without encoding it.
func messageWireSize(m *Message) int {
	n := 1 + protowire.SizeBytes(len(m.Topic)) + 1 + protowire.SizeBytes(len(m.Origin)) +
		1 + protowire.SizeVarint(m.Seq) + 1 + protowire.SizeVarint(uint64(m.OriginTime)) +
		1 + protowire.SizeVarint(uint64(m.Hops))
	if len(m.Data) > 0 {
		n += 1 + protowire.SizeBytes(len(m.Data))
	}
	if len(m.Signature) > 0 {
		n += 1 + protowire.SizeBytes(len(m.Signature))
	}
	return 1 + protowire.SizeBytes(n)
}

// controlWireBound is at least the size of c in a GossipRPC's control, counted without encoding it (every length
// prefix and varint taken at its largest).
func controlWireBound(c *Control) int {
	const field = 1 + 5 // a tag and a length prefix
	n := field
	for _, ih := range c.IHave {
		n += field + field + len(ih.Topic) + len(ih.IDs)*(2+MsgIDSize)
	}
	n += len(c.IWant) * (2 + MsgIDSize)
	for _, g := range c.Graft {
		n += field + len(g)
	}
	for _, p := range c.Prune {
		n += field + field + len(p.Topic) + 2
	}
	for i := range c.Tree {
		ti := &c.Tree[i]
		// topic; root, parent, upstream; seq; dist, rank, size, deep; path; cuts; signature
		n += field + field + len(ti.Topic) + 3*(2+len(session.NodeID{})) + 11 + 4*6 + field + 4*len(ti.Path) +
			len(ti.Cuts)*(field+2*5+6) + field + len(ti.Sig)
	}
	return n
}

// splitControl returns c in parts whose controlWireBound is at most limit each, and whose message ids (IHAVEs' and
// IWANT's) are at most maxIDs (messages.MaxGossipRPCIDs: a peer refuses an RPC of more): c itself when it fits,
// otherwise its entries packed in order, the IWANT ids in pieces where they do not fit whole. One entry larger than
// limit on its own (an IHAVE of more ids than limit holds; MaxIHaveLength keeps them far smaller) makes a part of
// its own.
func splitControl(c *Control, limit, maxIDs int) []*Control {
	ids := len(c.IWant)
	for _, ih := range c.IHave {
		ids += len(ih.IDs)
	}
	if controlWireBound(c) <= limit && ids <= maxIDs {
		return []*Control{c}
	}
	empty := controlWireBound(&Control{})
	var parts []*Control
	cur, size, curIDs := &Control{}, empty, 0
	take := func(entry *Control, entryIDs int, merge func(*Control)) {
		n := controlWireBound(entry) - empty
		if (size+n > limit || curIDs+entryIDs > maxIDs) && size > empty {
			parts = append(parts, cur)
			cur, size, curIDs = &Control{}, empty, 0
		}
		merge(cur)
		size += n
		curIDs += entryIDs
	}
	for _, ih := range c.IHave {
		take(&Control{IHave: []IHave{ih}}, len(ih.IDs), func(p *Control) { p.IHave = append(p.IHave, ih) })
	}
	per := max(1, min((limit-empty)/(2+MsgIDSize), maxIDs))
	for ids := c.IWant; len(ids) > 0; {
		chunk := ids[:min(len(ids), per)]
		ids = ids[len(chunk):]
		take(&Control{IWant: chunk}, len(chunk), func(p *Control) { p.IWant = append(p.IWant, chunk...) })
	}
	for _, g := range c.Graft {
		take(&Control{Graft: []string{g}}, 0, func(p *Control) { p.Graft = append(p.Graft, g) })
	}
	for _, pr := range c.Prune {
		take(&Control{Prune: []Prune{pr}}, 0, func(p *Control) { p.Prune = append(p.Prune, pr) })
	}
	for _, ti := range c.Tree {
		take(&Control{Tree: []TreeInfo{ti}}, 0, func(p *Control) { p.Tree = append(p.Tree, ti) })
	}
	return append(parts, cur)
}

// errBadMessage is wrapped by the errors of messageFromWire.
var errBadMessage = errors.New("gossip: malformed message")

// messageFromWire converts a received message; the signature is not checked here.
func messageFromWire(w *messages.GossipMessage) (*Message, error) {
	origin, err := session.NodeIDFromBytes(w.Origin)
	if err != nil {
		return nil, fmt.Errorf("%w: origin: %w", errBadMessage, err)
	}
	if w.Topic == "" {
		return nil, fmt.Errorf("%w: empty topic", errBadMessage)
	}
	return &Message{
		Topic: w.Topic, Data: w.Data, Origin: origin, Seq: w.Seq, OriginTime: w.OriginTime, Hops: w.Hops,
		Signature: w.Signature,
	}, nil
}

// rpcEncoder fills the protobuf structs of outgoing GossipRPCs, one RPC after another, and reuses them: the
// Network encodes each RPC before SendNow returns, so one set serves every peer of every call. It keeps the
// wire form of each message of the current call, built once for all the peers it goes to.
type rpcEncoder struct {
	rpc     messages.GossipRPC
	control messages.GossipControl
	msgs    pool[messages.GossipMessage]
	ihaves  pool[messages.GossipIHave]
	prunes  pool[messages.GossipPrune]
	trees   pool[messages.GossipTree]
	cuts    pool[messages.GossipTreeCut]
	encoded []*Message // encoded[i] is the message msgs.items[i] carries
	taken   []bool     // scratch of sendAll: the sends already in an RPC
}

// pool hands out reusable structs; reset makes them all available again.
type pool[T any] struct {
	items []*T
	used  int
}

func (p *pool[T]) get() *T {
	if p.used == len(p.items) {
		p.items = append(p.items, new(T))
	}
	p.used++
	return p.items[p.used-1]
}

func (p *pool[T]) reset() { p.used = 0 }

// begin starts the next RPC: empty, without control.
func (e *rpcEncoder) begin() *messages.GossipRPC {
	clear(e.rpc.Messages)
	e.rpc.Messages = e.rpc.Messages[:0]
	e.rpc.Subscriptions, e.rpc.Hello, e.rpc.Control = nil, false, nil
	e.ihaves.reset()
	e.prunes.reset()
	e.trees.reset()
	e.cuts.reset()
	return &e.rpc
}

// addMessage adds m to the current RPC, encoding it unless an earlier RPC of this call carries it already.
func (e *rpcEncoder) addMessage(m *Message) {
	i := slices.Index(e.encoded, m)
	if i < 0 {
		w := e.msgs.get()
		w.Topic, w.Data, w.Origin, w.Seq, w.OriginTime, w.Hops = m.Topic, m.Data, m.Origin[:], m.Seq, m.OriginTime, m.Hops
		w.Signature = m.Signature
		e.encoded = append(e.encoded, m)
		i = len(e.encoded) - 1
	}
	e.rpc.Messages = append(e.rpc.Messages, e.msgs.items[i])
}

// addControl adds c to the current RPC's control.
func (e *rpcEncoder) addControl(c *Control) {
	w := &e.control
	if e.rpc.Control == nil {
		e.rpc.Control = w
		w.Ihave, w.Iwant, w.Graft = w.Ihave[:0], w.Iwant[:0], w.Graft[:0]
		w.Prune, w.Tree = w.Prune[:0], w.Tree[:0]
	}
	for _, ih := range c.IHave {
		wi := e.ihaves.get()
		wi.Topic, wi.Ids = ih.Topic, wi.Ids[:0]
		for i := range ih.IDs {
			wi.Ids = append(wi.Ids, ih.IDs[i][:])
		}
		w.Ihave = append(w.Ihave, wi)
	}
	for i := range c.IWant {
		w.Iwant = append(w.Iwant, c.IWant[i][:])
	}
	w.Graft = append(w.Graft, c.Graft...)
	for _, p := range c.Prune {
		wp := e.prunes.get()
		wp.Topic, wp.Lazy = p.Topic, p.Lazy
		w.Prune = append(w.Prune, wp)
	}
	for i := range c.Tree {
		ti := &c.Tree[i] // a pointer: slicing a copy's arrays would move the copy to the heap
		wt := e.trees.get()
		wt.Topic, wt.Root, wt.Seq, wt.Dist = ti.Topic, ti.Root[:], ti.Seq, uint32(ti.Dist)
		wt.RootRank, wt.Path, wt.Parent, wt.Upstream, wt.Sig = uint32(ti.RootRank), ti.Path, nil, nil, ti.Sig
		if !ti.Parent.IsZero() {
			wt.Parent = ti.Parent[:]
		}
		if !ti.Upstream.IsZero() {
			wt.Upstream = ti.Upstream[:]
		}
		wt.Size, wt.Deep = uint32(min(ti.Size, maxTreeSize)), uint32(min(ti.Deep, maxTreeSize))
		wt.Cuts = wt.Cuts[:0]
		for _, c := range ti.Cuts {
			wc := e.cuts.get()
			wc.Parent, wc.Child, wc.Ttl = c.Parent, c.Child, uint32(c.TTL)
			wt.Cuts = append(wt.Cuts, wc)
		}
		w.Tree = append(w.Tree, wt)
	}
}

// end finishes a call: the structs drop their references to messages and ids, so nothing sent stays reachable.
func (e *rpcEncoder) end() {
	e.begin()
	for _, w := range e.msgs.items[:e.msgs.used] {
		w.Topic, w.Data, w.Origin, w.Signature = "", nil, nil, nil
	}
	e.msgs.reset()
	clear(e.encoded)
	e.encoded = e.encoded[:0]
	for _, wi := range e.ihaves.items {
		clear(wi.Ids)
	}
	for _, wt := range e.trees.items {
		wt.Root, wt.Parent, wt.Upstream, wt.Path, wt.Sig = nil, nil, nil, nil, nil
		clear(wt.Cuts)
	}
	w := &e.control
	clear(w.Ihave)
	clear(w.Iwant)
	clear(w.Graft)
	clear(w.Prune)
	clear(w.Tree)
}

// controlFromWire converts received control, dropping ids of the wrong size. At most maxIDs ids are read per
// IHAVE and per IWANT, valid or not (Config.MaxIHaveLength, what controlCost charges: until stop 58 the invalid
// ones did not count, and an IWANT of 65 536 empty ids held the relay ~1 ms for the cost of 500 valid ones; those
// left and those dropped are counted in IHave.Unread and
// Control.IWantUnread), and at most maxTopics entries of each kind that names a topic
// (IHAVE, GRAFT, PRUNE, tree reports: Config.MaxPeerTopics, the topics a peer may share with the node), whatever
// the peer sent: one RPC of thousands of tree reports cost the relay milliseconds. The ids of the IHAVEs left are
// counted in Control.IHaveUnread.
func controlFromWire(w *messages.GossipControl, maxIDs, maxTopics int) *Control {
	c := &Control{Graft: w.Graft[:min(len(w.Graft), maxTopics):min(len(w.Graft), maxTopics)]}
	ihave, prune, tree := w.Ihave[:min(len(w.Ihave), maxTopics)], w.Prune[:min(len(w.Prune), maxTopics)],
		w.Tree[:min(len(w.Tree), maxTopics)]
	// Slices are sized up front: control rides on most RPCs, and growing them was a good share of its allocations.
	if len(ihave) > 0 {
		c.IHave = make([]IHave, 0, len(ihave))
	}
	if len(tree) > 0 {
		c.Tree = make([]TreeInfo, 0, len(tree))
	}
	for _, wi := range ihave {
		ih := IHave{Topic: wi.Topic, IDs: make([]MsgID, 0, min(len(wi.Ids), maxIDs))}
		for i, raw := range wi.Ids {
			if i == maxIDs { // examined, valid or not: the control budget charges maxIDs at most
				ih.Unread += len(wi.Ids) - i
				break
			}
			if id, ok := msgIDFrom(raw); ok {
				ih.IDs = append(ih.IDs, id)
			} else {
				ih.Unread++
			}
		}
		c.IHave = append(c.IHave, ih)
	}
	for _, wi := range w.Ihave[len(ihave):] {
		c.IHaveUnread += len(wi.Ids)
	}
	if len(w.Iwant) > 0 {
		c.IWant = make([]MsgID, 0, min(len(w.Iwant), maxIDs))
	}
	for i, raw := range w.Iwant {
		if i == maxIDs { // as the IHAVEs' ids
			c.IWantUnread += len(w.Iwant) - i
			break
		}
		if id, ok := msgIDFrom(raw); ok {
			c.IWant = append(c.IWant, id)
		} else {
			c.IWantUnread++
		}
	}
	for _, p := range prune {
		c.Prune = append(c.Prune, Prune{Topic: p.Topic, Lazy: p.Lazy})
	}
	for _, wt := range tree {
		root, err := session.NodeIDFromBytes(wt.Root)
		if err != nil || wt.Dist >= maxTreeDist || wt.RootRank > maxTreeRank || len(wt.Path) > maxTreePath ||
			len(wt.Cuts) > maxTreeCuts || len(wt.Sig) != 0 && len(wt.Sig) != ed25519.SignatureSize {
			continue
		}
		ti := TreeInfo{Topic: wt.Topic, Root: root, RootRank: int(wt.RootRank), Seq: wt.Seq, Dist: int(wt.Dist),
			Path: wt.Path, Size: int(min(wt.Size, maxTreeSize)), Deep: int(min(wt.Deep, maxTreeSize)), Sig: wt.Sig}
		if len(wt.Cuts) > 0 {
			ti.Cuts = make([]TreeCut, len(wt.Cuts))
			for i, c := range wt.Cuts {
				ti.Cuts[i] = TreeCut{Parent: c.Parent, Child: c.Child, TTL: int(c.Ttl)}
			}
		}
		if len(wt.Parent) > 0 {
			if ti.Parent, err = session.NodeIDFromBytes(wt.Parent); err != nil {
				continue
			}
		}
		if len(wt.Upstream) > 0 {
			if ti.Upstream, err = session.NodeIDFromBytes(wt.Upstream); err != nil {
				continue
			}
		}
		c.Tree = append(c.Tree, ti)
	}
	return c
}

func msgIDFrom(b []byte) (MsgID, bool) {
	var id MsgID
	if len(b) != MsgIDSize {
		return id, false
	}
	copy(id[:], b)
	return id, true
}
