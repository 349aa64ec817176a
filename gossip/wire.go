package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

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

// errBadMessage is wrapped by the errors of messageFromWire.
var errBadMessage = errors.New("gossip: malformed message")

// messageToWire converts m for the wire.
func messageToWire(m *Message) *messages.GossipMessage {
	return &messages.GossipMessage{
		Topic: m.Topic, Data: m.Data, Origin: m.Origin[:], Seq: m.Seq, OriginTime: m.OriginTime, Hops: m.Hops,
		Signature: m.Signature,
	}
}

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

// controlToWire merges c into w (w may hold control for the same peer already).
func controlToWire(w *messages.GossipControl, c *Control) {
	for _, ih := range c.IHave {
		wi := &messages.GossipIHave{Topic: ih.Topic, Ids: make([][]byte, len(ih.IDs))}
		for i := range ih.IDs {
			wi.Ids[i] = ih.IDs[i][:]
		}
		w.Ihave = append(w.Ihave, wi)
	}
	for i := range c.IWant {
		w.Iwant = append(w.Iwant, c.IWant[i][:])
	}
	w.Graft = append(w.Graft, c.Graft...)
	for _, p := range c.Prune {
		w.Prune = append(w.Prune, &messages.GossipPrune{Topic: p.Topic, Lazy: p.Lazy})
	}
	for _, ti := range c.Tree {
		wt := &messages.GossipTree{Topic: ti.Topic, Root: ti.Root[:], Seq: ti.Seq, Dist: uint32(ti.Dist),
			RootRank: uint32(ti.RootRank), Path: ti.Path}
		if !ti.Parent.IsZero() {
			wt.Parent = ti.Parent[:]
		}
		if !ti.Upstream.IsZero() {
			wt.Upstream = ti.Upstream[:]
		}
		wt.Size, wt.Deep = uint32(min(ti.Size, maxTreeSize)), uint32(min(ti.Deep, maxTreeSize))
		w.Tree = append(w.Tree, wt)
	}
}

// controlFromWire converts received control, dropping ids of the wrong size. At most maxIDs ids are read per
// IHAVE and per IWANT (Config.MaxIHaveLength), whatever the peer sent.
func controlFromWire(w *messages.GossipControl, maxIDs int) *Control {
	c := &Control{Graft: w.Graft}
	// Slices are sized up front: control rides on most RPCs, and growing them was a good share of its allocations.
	if len(w.Ihave) > 0 {
		c.IHave = make([]IHave, 0, len(w.Ihave))
	}
	if len(w.Tree) > 0 {
		c.Tree = make([]TreeInfo, 0, len(w.Tree))
	}
	for _, wi := range w.Ihave {
		ih := IHave{Topic: wi.Topic, IDs: make([]MsgID, 0, min(len(wi.Ids), maxIDs))}
		for _, raw := range wi.Ids {
			if len(ih.IDs) == maxIDs {
				break
			}
			if id, ok := msgIDFrom(raw); ok {
				ih.IDs = append(ih.IDs, id)
			}
		}
		c.IHave = append(c.IHave, ih)
	}
	if len(w.Iwant) > 0 {
		c.IWant = make([]MsgID, 0, min(len(w.Iwant), maxIDs))
	}
	for _, raw := range w.Iwant {
		if len(c.IWant) == maxIDs {
			break
		}
		if id, ok := msgIDFrom(raw); ok {
			c.IWant = append(c.IWant, id)
		}
	}
	for _, p := range w.Prune {
		c.Prune = append(c.Prune, Prune{Topic: p.Topic, Lazy: p.Lazy})
	}
	for _, wt := range w.Tree {
		root, err := session.NodeIDFromBytes(wt.Root)
		if err != nil || wt.Dist >= maxTreeDist || wt.RootRank > maxTreeRank || len(wt.Path) > maxTreePath {
			continue
		}
		ti := TreeInfo{Topic: wt.Topic, Root: root, RootRank: int(wt.RootRank), Seq: wt.Seq, Dist: int(wt.Dist),
			Path: wt.Path, Size: int(min(wt.Size, maxTreeSize)), Deep: int(min(wt.Deep, maxTreeSize))}
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
