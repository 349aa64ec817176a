package messages

// Hand-written, not generated: gen.sh regenerates only the *.pb.go files.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// UnmarshalGossipRPC decodes b into a new GossipRPC, with the result and error proto.Unmarshal would give, in a
// handful of allocations instead of one per bytes or string field and repeated element.
//
// Nothing of the result aliases b, so the caller may reuse b when it returns. The bytes are copied into a few
// arrays, by what keeps them alive: each message's bytes fields (data, origin, signature) into one of its own, so
// that a message kept (cached, delivered) keeps only itself and not the control or other messages it came with;
// the control's bytes fields (ids, tree roots, parents, upstreams) into another; the short strings into a third,
// small one (at most 1 KiB), built with unsafe.String and never written again, and a longer string into one of its
// own, so that a topic kept as a map key keeps neither a payload nor another long string alive.
// Each bytes field's capacity is cut to its length (an append reallocates rather than overwrite the next field).
// The elements of a repeated field (and the ids of all IHAVE entries, the paths and the cuts of all tree reports)
// share one backing array.
//
// Only the well-formed common shape is decoded by hand. Anything else (an unknown field, a known field with another
// wire type, a repeated control field, which proto merges, a string that is not UTF-8, an unpacked path, malformed
// bytes) is handed to proto.Unmarshal, whose verdict it returns. The tree reports' cuts are decoded by hand too,
// though they only follow a failure: proto.Unmarshal's reflection runs deep, and a connection's reader that took it
// once kept an 8 KiB stack for good (`node sim -kill 0.2`, seed 8: stacks 33.7 -> 21.7 MiB, peak RSS 1.02 -> 0.95
// MiB per node).
//
// An RPC with more elements than the limits below (gossipCounts.overLimit) is refused with ErrGossipRPCTooLarge
// before anything is allocated for them, and so is one over maxFallbackBytes that only proto.Unmarshal would take:
// the elements of a repeated message field cost 2 bytes on the wire when empty, and 40-150 bytes decoded, so a
// peer's 1 MiB RPC of empty subscriptions, messages or tree reports decoded to 38-113 MB.
func UnmarshalGossipRPC(b []byte) (*GossipRPC, error) {
	m, ok, err := decodeGossipRPC(b)
	if err != nil || ok {
		return m, err
	}
	if len(b) > maxFallbackBytes {
		return nil, fmt.Errorf("%w: %d bytes in a shape only the generic decoder takes (at most %d)", ErrGossipRPCTooLarge, len(b), maxFallbackBytes)
	}
	m = &GossipRPC{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// ErrGossipRPCTooLarge refuses a GossipRPC over the decoder's limits: more elements than any node sends in one RPC,
// or a large one in a shape actormesh's encoder never makes.
var ErrGossipRPCTooLarge = errors.New("gossip RPC over the decoder's limits")

// maxFallbackBytes bounds the RPCs handed to proto.Unmarshal: small enough that its amplification (up to ~110 times
// for empty elements) stays a few MB.
const maxFallbackBytes = 64 << 10

// The most elements of each kind one RPC may hold (the cuts summed over the tree reports, the message ids over the
// IHAVEs and the IWANT); each is well above what a relay sends (one subscription per topic it joined, one IHAVE,
// GRAFT, PRUNE or tree report per topic, 128 cuts a report, MaxIHaveLength ids an IHAVE or IWANT, 500 by default,
// for at most MaxPeerTopics topics, 64, and the few messages of one relay step or one heartbeat's IWANT answers, 256
// at most), and decodes to a MB or two at most. Without the bound on ids, a 1 MiB RPC of empty IWANT ids decoded to
// 524 280 of them, 12.6 MB (stop 55, a mutation audit's finding).
const (
	maxRPCSubs     = 8192
	maxRPCMessages = 8192
	maxRPCControl  = 4096 // IHAVEs, GRAFTs, PRUNEs and tree reports, each
	maxRPCCuts     = 32768
)

// MaxGossipRPCIDs is the most message ids one GossipRPC may hold, its IHAVEs' and its IWANT's together; the gossip
// relay splits its control messages so that no RPC it sends holds more, whatever its MaxIHaveLength and
// MaxRPCSize.
const MaxGossipRPCIDs = 65536

// overLimit tells whether counts are over the limits above.
func (c gossipCounts) overLimit() bool {
	return c.subs > maxRPCSubs || c.msgs > maxRPCMessages || c.ihave > maxRPCControl || c.graft > maxRPCControl ||
		c.prune > maxRPCControl || c.tree > maxRPCControl || c.cuts > maxRPCCuts || c.ids+c.iwant > MaxGossipRPCIDs
}

// unmarshalGossipRPCFast is UnmarshalGossipRPC without the fallback: false means b is not in the shape it takes, or
// over the limits.
func unmarshalGossipRPCFast(b []byte) (*GossipRPC, bool) {
	m, ok, err := decodeGossipRPC(b)
	return m, ok && err == nil
}

// decodeGossipRPC decodes b by hand: false means b is not in the shape it takes; an error, that b is over the
// limits.
func decodeGossipRPC(b []byte) (*GossipRPC, bool, error) {
	d := gossipDecoders.Get().(*gossipDecoder)
	m, ok, err := d.decode(b)
	*d = gossipDecoder{} // the pool keeps neither the result's arrays nor b alive
	gossipDecoders.Put(d)
	return m, ok, err
}

// gossipDecoders holds the decoders of decodeGossipRPC, which are not on its stack frame: a gossipDecoder is 1.2 KiB
// (two thirds of it the counting pass's scratch messages), and on the stack it made the frame 1.8 KiB, which took
// a connection's reader (actors' onDirect decodes the RPCs it reads) past 4 KiB of stack on the first RPC it read,
// and Go keeps a grown stack while a quarter of it is in use: 3 230 readers held 8 KiB each, 25 MiB of the 200-node
// sim's 39 MiB of stacks (seed 7). The decoder is zeroed either way, on the stack or here.
var gossipDecoders = sync.Pool{New: func() any { return new(gossipDecoder) }}

// decode is decodeGossipRPC with d, which must be zero.
func (d *gossipDecoder) decode(b []byte) (*GossipRPC, bool, error) {
	// The first pass counts the elements of the repeated fields and the bytes of the strings, decoding every
	// message into scratch values; it checks everything the second pass does, so the arrays are allocated only for
	// bytes the fast path takes. Both passes run the same code on the same bytes, so the second one meets exactly
	// the counted elements.
	if !d.rpc(b, &d.scratch.rpc) {
		return nil, false, nil
	}
	total := d.n
	if total.overLimit() {
		return nil, false, fmt.Errorf("%w: %d subscriptions, %d messages, %d IHAVEs, %d GRAFTs, %d PRUNEs, %d tree reports, %d cuts, %d message ids",
			ErrGossipRPCTooLarge, total.subs, total.msgs, total.ihave, total.graft, total.prune, total.tree, total.cuts, total.ids+total.iwant)
	}
	d.n, d.fill = gossipCounts{}, true
	d.subs = makeN[GossipSubscription](total.subs)
	d.msgs = makeN[GossipMessage](total.msgs)
	d.ihave = makeN[GossipIHave](total.ihave)
	d.ids = makeN[[]byte](total.ids)
	d.iwant = makeN[[]byte](total.iwant)
	d.graft = makeN[string](total.graft)
	d.prune = makeN[GossipPrune](total.prune)
	d.tree = makeN[GossipTree](total.tree)
	d.path = makeN[uint32](total.path)
	d.cuts = makeN[GossipTreeCut](total.cuts)
	if total.strBytes > 0 {
		d.strs = make([]byte, 0, total.strBytes)
	}
	if total.ctlBytes > 0 {
		d.ctlBytes = make([]byte, 0, total.ctlBytes)
	}
	var m *GossipRPC
	if total.control {
		both := new(struct {
			rpc GossipRPC
			ctl GossipControl
		})
		m, d.ctl = &both.rpc, &both.ctl
	} else {
		m = &GossipRPC{}
	}
	if !d.rpc(b, m) || d.n != total {
		return nil, false, nil // unreachable, see above
	}
	m.Subscriptions = pointers(d.subs)
	m.Messages = pointers(d.msgs)
	if c := d.ctl; c != nil {
		c.Ihave, c.Iwant, c.Graft = pointers(d.ihave), d.iwant, d.graft
		c.Prune, c.Tree = pointers(d.prune), pointers(d.tree)
	}
	return m, true, nil
}

// gossipCounts counts the elements of the repeated fields of one GossipRPC (ids, path and cuts summed over all
// their parents), and whether its control field occurred.
type gossipCounts struct {
	control                                                                           bool
	subs, msgs, ihave, ids, iwant, graft, prune, tree, path, cuts, strBytes, ctlBytes int
}

// gossipDecoder decodes one GossipRPC in two passes: counting (fill false), then filling the backing arrays, each
// allocated with its exact length. n counts the elements met so far; on the second pass it indexes the arrays.
type gossipDecoder struct {
	fill     bool
	n        gossipCounts
	ctl      *GossipControl
	subs     []GossipSubscription
	msgs     []GossipMessage
	ihave    []GossipIHave
	ids      [][]byte
	iwant    [][]byte
	graft    []string
	prune    []GossipPrune
	tree     []GossipTree
	path     []uint32
	cuts     []GossipTreeCut
	strs     []byte // the bytes of every string field, allocated with the summed length
	ctlBytes []byte // the bytes of the control's bytes fields (ids, tree roots...), likewise
	last     string // the string made last, from strs
	// scratch receives the messages the first pass decodes, which are dropped.
	scratch struct {
		rpc   GossipRPC
		ctl   GossipControl
		sub   GossipSubscription
		msg   GossipMessage
		ihave GossipIHave
		prune GossipPrune
		tree  GossipTree
	}
}

func (d *gossipDecoder) rpc(b []byte, m *GossipRPC) bool {
	for len(b) > 0 {
		num, typ, x, v, n := nextField(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			if sub := elem(d, d.subs, &d.n.subs, &d.scratch.sub); !d.topicAndFlag(v, &sub.Topic, &sub.Subscribe) {
				return false
			}
		case num == 2 && typ == protowire.BytesType:
			if d.n.control {
				return false // proto merges a repeated singular message field
			}
			d.n.control = true
			c := &d.scratch.ctl
			if d.fill {
				c, m.Control = d.ctl, d.ctl // present even when empty
			}
			if !d.control(v, c) {
				return false
			}
		case num == 3 && typ == protowire.BytesType:
			if !d.message(v, elem(d, d.msgs, &d.n.msgs, &d.scratch.msg)) {
				return false
			}
		case num == 4 && typ == protowire.VarintType:
			m.Hello = protowire.DecodeBool(x)
		default:
			return false
		}
	}
	return true
}

// topicAndFlag decodes a message of a topic (field 1) and a bool (field 2): GossipSubscription, GossipPrune.
func (d *gossipDecoder) topicAndFlag(b []byte, topic *string, flag *bool) bool {
	for len(b) > 0 {
		num, typ, x, v, n := nextField(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var ok bool
		switch {
		case num == 1 && typ == protowire.BytesType:
			*topic, ok = d.str(v)
		case num == 2 && typ == protowire.VarintType:
			*flag, ok = protowire.DecodeBool(x), true
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *gossipDecoder) message(b []byte, m *GossipMessage) bool {
	var own []byte // the bytes of this message's bytes fields: what a cached message keeps alive is its own
	if d.fill {
		own = make([]byte, 0, messageBytes(b))
	}
	for len(b) > 0 {
		num, typ, x, v, n := nextField(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		ok := true
		switch {
		case num == 1 && typ == protowire.BytesType:
			m.Topic, ok = d.str(v)
		case num == 2 && typ == protowire.BytesType:
			m.Data = d.keep(&own, v)
		case num == 3 && typ == protowire.BytesType:
			m.Origin = d.keep(&own, v)
		case num == 4 && typ == protowire.VarintType:
			m.Seq = x
		case num == 5 && typ == protowire.VarintType:
			m.OriginTime = int64(x)
		case num == 6 && typ == protowire.VarintType:
			m.Hops = uint32(x)
		case num == 7 && typ == protowire.BytesType:
			m.Signature = d.keep(&own, v)
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	return true
}

func (d *gossipDecoder) control(b []byte, m *GossipControl) bool {
	for len(b) > 0 {
		num, typ, _, v, n := nextField(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			if !d.ihaveEntry(v, elem(d, d.ihave, &d.n.ihave, &d.scratch.ihave)) {
				return false
			}
		case 2:
			id := d.keepControl(v)
			if d.fill {
				d.iwant[d.n.iwant] = id
			}
			d.n.iwant++
		case 3:
			s, ok := d.str(v)
			if !ok {
				return false
			}
			if d.fill {
				d.graft[d.n.graft] = s
			}
			d.n.graft++
		case 4:
			if p := elem(d, d.prune, &d.n.prune, &d.scratch.prune); !d.topicAndFlag(v, &p.Topic, &p.Lazy) {
				return false
			}
		case 5:
			if !d.treeReport(v, elem(d, d.tree, &d.n.tree, &d.scratch.tree)) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func (d *gossipDecoder) ihaveEntry(b []byte, m *GossipIHave) bool {
	first := d.n.ids
	for len(b) > 0 {
		num, typ, _, v, n := nextField(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		switch num {
		case 1:
			var ok bool
			if m.Topic, ok = d.str(v); !ok {
				return false
			}
		case 2:
			id := d.keepControl(v)
			if d.fill {
				d.ids[d.n.ids] = id
			}
			d.n.ids++
		default:
			return false
		}
	}
	if d.fill && d.n.ids > first {
		m.Ids = d.ids[first:d.n.ids:d.n.ids]
	}
	return true
}

func (d *gossipDecoder) treeReport(b []byte, m *GossipTree) bool {
	first, firstCut := d.n.path, d.n.cuts
	for len(b) > 0 {
		num, typ, x, v, n := nextField(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		ok := true
		switch {
		case num == 1 && typ == protowire.BytesType:
			m.Topic, ok = d.str(v)
		case num == 2 && typ == protowire.BytesType:
			m.Root = d.keepControl(v)
		case num == 3 && typ == protowire.VarintType:
			m.Seq = x
		case num == 4 && typ == protowire.VarintType:
			m.Dist = uint32(x)
		case num == 5 && typ == protowire.BytesType:
			m.Parent = d.keepControl(v)
		case num == 6 && typ == protowire.VarintType:
			m.RootRank = uint32(x)
		case num == 7 && typ == protowire.BytesType: // packed; unpacked elements are left to proto.Unmarshal
			if len(v)%4 != 0 {
				return false
			}
			if d.fill {
				p := d.path[d.n.path : d.n.path+len(v)/4]
				for i := range p {
					p[i] = binary.LittleEndian.Uint32(v[4*i:])
				}
			}
			d.n.path += len(v) / 4
		case num == 8 && typ == protowire.BytesType:
			m.Upstream = d.keepControl(v)
		case num == 9 && typ == protowire.VarintType:
			m.Size = uint32(x)
		case num == 10 && typ == protowire.VarintType:
			m.Deep = uint32(x)
		case num == 11 && typ == protowire.BytesType:
			ok = d.cut(v)
		case num == 12 && typ == protowire.BytesType:
			m.Sig = d.keepControl(v)
		default:
			ok = false
		}
		if !ok {
			return false
		}
	}
	if d.fill && d.n.path > first {
		m.Path = d.path[first:d.n.path:d.n.path]
	}
	if d.fill && d.n.cuts > firstCut {
		m.Cuts = pointers(d.cuts[firstCut:d.n.cuts])
	}
	return true
}

// cut decodes one GossipTreeCut: two fixed32 fields and a varint, read here rather than by nextField, which takes
// no fixed32 field.
func (d *gossipDecoder) cut(b []byte) bool {
	var parent, child, ttl uint32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed32Type:
			parent, n = protowire.ConsumeFixed32(b)
		case num == 2 && typ == protowire.Fixed32Type:
			child, n = protowire.ConsumeFixed32(b)
		case num == 3 && typ == protowire.VarintType:
			var x uint64
			x, n = protowire.ConsumeVarint(b)
			ttl = uint32(x)
		default:
			return false
		}
		if n < 0 {
			return false
		}
		b = b[n:]
	}
	if d.fill {
		dst := &d.cuts[d.n.cuts]
		dst.Parent, dst.Child, dst.Ttl = parent, child, ttl
	}
	d.n.cuts++
	return true
}

// nextField reads the next field of b: its number and wire type, its value (x for a varint, v for a
// length-delimited field, capacity cut to length) and the number of bytes it took, or n < 0 when b does not start
// with a well-formed varint or length-delimited field. Other wire types are refused: none of the fast path's fields
// uses them (an unpacked path aside). A field number above protowire.MaxValidNumber, which protowire.ConsumeTag
// accepts and proto.Unmarshal rejects, never matches a known field, so it is refused too.
func nextField(b []byte) (num protowire.Number, typ protowire.Type, x uint64, v []byte, n int) {
	num, typ, n = protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, nil, -1
	}
	var m int
	switch typ {
	case protowire.VarintType:
		x, m = protowire.ConsumeVarint(b[n:])
	case protowire.BytesType:
		v, m = protowire.ConsumeBytes(b[n:])
		v = v[:len(v):len(v)]
	default:
		return 0, 0, 0, nil, -1
	}
	if m < 0 {
		return 0, 0, 0, nil, -1
	}
	return num, typ, x, v, n + m
}

// keep returns v copied into *own (allocated with room for it), or v itself on the counting pass, whose values are
// dropped. The copy's capacity is cut to its length: an append reallocates rather than overwrite the next field.
func (d *gossipDecoder) keep(own *[]byte, v []byte) []byte {
	if !d.fill {
		return v
	}
	start := len(*own)
	*own = append(*own, v...)
	return (*own)[start:len(*own):len(*own)]
}

// keepControl is keep into the control's bytes, whose length both passes count.
func (d *gossipDecoder) keepControl(v []byte) []byte {
	d.n.ctlBytes += len(v)
	return d.keep(&d.ctlBytes, v)
}

// messageBytes sums the lengths of the bytes fields of a message the counting pass took.
func messageBytes(b []byte) int {
	n := 0
	for len(b) > 0 {
		num, typ, _, v, k := nextField(b)
		if k < 0 {
			break
		}
		if typ == protowire.BytesType && (num == 2 || num == 3 || num == 7) {
			n += len(v)
		}
		b = b[k:]
	}
	return n
}

// Strings up to sharedStrLen bytes share one array, as long as it stays within sharedStrBytes; the others get one
// of their own. A string kept (a topic as a map key, a cached message's topic) then keeps alive at most
// sharedStrBytes besides itself, whatever the RPC's other strings: an RPC's topics are short and few, so they
// still take one allocation.
const (
	sharedStrLen   = 128
	sharedStrBytes = 1 << 10
)

// str returns v as a string, or false when v is not UTF-8 (proto3 rejects it). Strings do not share the copy of
// the RPC: their bytes are copied again, the short ones into one small array for all of them (the count pass sums
// their lengths), the others each into its own (see sharedStrLen), so that a topic kept as a map key keeps neither
// a payload nor another large string alive with it. A string equal to the one before it (the same topic in several
// fields) is that string again.
func (d *gossipDecoder) str(v []byte) (string, bool) {
	if len(v) == 0 {
		return "", true
	}
	if !utf8.Valid(v) {
		return "", false
	}
	// The same decision in both passes: strBytes grows alike.
	shared := len(v) <= sharedStrLen && d.n.strBytes+len(v) <= sharedStrBytes
	if shared {
		d.n.strBytes += len(v)
	}
	if !d.fill {
		return "", true
	}
	if d.last == string(v) {
		return d.last, true
	}
	if !shared {
		d.last = string(v)
		return d.last, true
	}
	start := len(d.strs)
	d.strs = append(d.strs, v...) // within the capacity counted: earlier strings stay where they are
	d.last = unsafe.String(&d.strs[start], len(v))
	return d.last, true
}

// elem returns the value the next element of a repeated message field decodes into: the next one of arr when
// filling, scratch when counting. n counts the elements.
func elem[T any](d *gossipDecoder, arr []T, n *int, scratch *T) *T {
	i := *n
	*n++
	if !d.fill {
		return scratch
	}
	return &arr[i]
}

// makeN returns a slice of n zero values, nil when n is 0 (as proto leaves an absent repeated field).
func makeN[T any](n int) []T {
	if n == 0 {
		return nil
	}
	return make([]T, n)
}

// pointers returns pointers to the elements of s, nil when s is empty.
func pointers[T any](s []T) []*T {
	if len(s) == 0 {
		return nil
	}
	p := make([]*T, len(s))
	for i := range s {
		p[i] = &s[i]
	}
	return p
}
