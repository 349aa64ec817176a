package gossip

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/actormesh/actormesh/messages"
	"google.golang.org/protobuf/proto"
)

func TestControlFromWireBoundsAndDropsMalformedEntries(t *testing.T) {
	id := make([]byte, MsgIDSize)
	var many [][]byte
	for range 50 {
		many = append(many, id)
	}
	w := &messages.GossipControl{
		Ihave: []*messages.GossipIHave{{Topic: "a", Ids: append([][]byte{{1, 2, 3}}, many...)}},
		Iwant: append([][]byte{make([]byte, MsgIDSize+1)}, many...),
		Graft: []string{"a"},
		Prune: []*messages.GossipPrune{{Topic: "a", Lazy: true}},
		Tree: []*messages.GossipTree{
			{Topic: "a", Root: nid(1).Bytes(), Seq: 3, Dist: 1, Parent: nid(1).Bytes(), RootRank: 7, Path: []uint32{5, 9}, Upstream: nid(4).Bytes(), Size: 30, Deep: maxTreeSize + 1,
				Cuts: []*messages.GossipTreeCut{{Parent: 5, Child: 9, Ttl: 3}}, Sig: bytes.Repeat([]byte{7}, 64)},
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Sig: make([]byte, 63)},                                // not a signature's size
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Cuts: make([]*messages.GossipTreeCut, maxTreeCuts+1)}, // too many cuts
			{Topic: "a", Root: nid(1).Bytes(), Dist: 1, RootRank: maxTreeRank + 1},                            // beyond the rank bound
			{Topic: "a", Root: []byte{1}, Dist: 1},                                                            // root is not a NodeID
			{Topic: "a", Root: nid(1).Bytes(), Dist: maxTreeDist},                                             // beyond the distance bound
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Parent: []byte("not a node id")},                      // bad parent
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Path: make([]uint32, maxTreePath+1)},                  // path too long
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Upstream: []byte{4}},                                  // bad upstream
		},
	}
	c := controlFromWire(w, 10, 64)
	// Of 51 ids each, the first 10 examined, valid or not (what the control budget charges): the malformed one
	// and the 41 past the cap are unread. Until stop 58 the cap counted valid ids only, and every id was examined.
	if len(c.IHave) != 1 || len(c.IHave[0].IDs) != 9 {
		t.Fatalf("IHAVE: %d entries, %d ids; want 1 entry of the 9 well-formed ids of the 10 examined", len(c.IHave), len(c.IHave[0].IDs))
	}
	if len(c.IWant) != 9 {
		t.Fatalf("IWANT: %d ids, want the 9 well-formed ones of the 10 examined", len(c.IWant))
	}
	if c.IHave[0].Unread != 42 || c.IWantUnread != 42 {
		t.Fatalf("unread: IHAVE %d, IWANT %d; want 42 and 42", c.IHave[0].Unread, c.IWantUnread)
	}
	if len(c.Tree) != 1 || c.Tree[0].Root != nid(1) || c.Tree[0].Parent != nid(1) || c.Tree[0].Seq != 3 ||
		c.Tree[0].RootRank != 7 || !slices.Equal(c.Tree[0].Path, []uint32{5, 9}) || c.Tree[0].Upstream != nid(4) ||
		c.Tree[0].Size != 30 || c.Tree[0].Deep != maxTreeSize || !slices.Equal(c.Tree[0].Cuts, []TreeCut{{Parent: 5, Child: 9, TTL: 3}}) ||
		!bytes.Equal(c.Tree[0].Sig, bytes.Repeat([]byte{7}, 64)) {
		t.Fatalf("tree entries: %+v, want only the well-formed one", c.Tree)
	}
	if len(c.Graft) != 1 || len(c.Prune) != 1 || !c.Prune[0].Lazy {
		t.Fatalf("graft/prune: %+v %+v", c.Graft, c.Prune)
	}

	// Round trip of what the router sends.
	var e rpcEncoder
	e.begin()
	e.addControl(c)
	again := controlFromWire(e.rpc.Control, 10, 64)
	if len(again.IHave[0].IDs) != 9 || len(again.IWant) != 9 || len(again.Tree) != 1 || !reflect.DeepEqual(again.Tree[0], c.Tree[0]) {
		t.Fatalf("round trip lost entries: %+v", again)
	}
}

// At most maxTopics entries of each kind naming a topic are read from one RPC, whatever the peer sent: an RPC of
// thousands of tree reports cost the relay milliseconds.
func TestControlFromWireReadsAtMostMaxTopicsEntriesOfEachKind(t *testing.T) {
	w := &messages.GossipControl{}
	for i := range 1000 {
		topic := fmt.Sprint("t", i)
		w.Ihave = append(w.Ihave, &messages.GossipIHave{Topic: topic, Ids: [][]byte{make([]byte, 32), make([]byte, 32)}})
		w.Graft = append(w.Graft, topic)
		w.Prune = append(w.Prune, &messages.GossipPrune{Topic: topic})
		w.Tree = append(w.Tree, &messages.GossipTree{Topic: topic, Root: nid(1).Bytes(), Dist: 1})
	}
	c := controlFromWire(w, 10, 5)
	if len(c.IHave) != 5 || len(c.Graft) != 5 || len(c.Prune) != 5 || len(c.Tree) != 5 {
		t.Fatalf("read %d IHAVEs, %d grafts, %d prunes, %d tree reports; want 5 of each",
			len(c.IHave), len(c.Graft), len(c.Prune), len(c.Tree))
	}
	if c.Tree[4].Topic != "t4" || c.Graft[0] != "t0" {
		t.Fatalf("not the first entries: %q %q", c.Tree[4].Topic, c.Graft[0])
	}
	if c.IHaveUnread != 2*995 {
		t.Fatalf("IHaveUnread %d, want the 1990 ids of the 995 IHAVEs left", c.IHaveUnread)
	}
}

// The ids of the IHAVEs past an RPC's MaxPeerTopics count as received and ignored, from a known peer only.
func TestIHavesPastMaxPeerTopicsAreCountedIgnored(t *testing.T) {
	r := joined(t, DefaultConfig(), 1)
	r.HandleControl(t0, nid(1), &Control{IHaveUnread: 7})
	r.HandleControl(t0, nid(9), &Control{IHaveUnread: 5}) // not a peer
	if st := r.Stats(); st.IHaveReceived != 7 || st.IHaveIgnored != 7 {
		t.Fatalf("IHaveReceived %d, IHaveIgnored %d; want 7 and 7", st.IHaveReceived, st.IHaveIgnored)
	}
}

func TestMessageFromWireRejectsBadOriginAndEmptyTopic(t *testing.T) {
	good := &messages.GossipMessage{Topic: "a", Data: []byte("x"), Origin: nid(1).Bytes(), Seq: 1, OriginTime: 5, Hops: 2}
	m, err := messageFromWire(good)
	var e rpcEncoder
	e.begin()
	e.addMessage(m)
	if err != nil || m.Origin != nid(1) || m.Hops != 2 || !bytes.Equal(e.rpc.Messages[0].Data, good.Data) {
		t.Fatalf("good message: %+v %v", m, err)
	}
	for name, w := range map[string]*messages.GossipMessage{
		"short origin": {Topic: "a", Origin: []byte{1, 2}},
		"empty topic":  {Origin: nid(1).Bytes()},
	} {
		if _, err := messageFromWire(w); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSignedBytesCoverEverythingButHops(t *testing.T) {
	base := Message{Topic: "a", Data: []byte("d"), Origin: nid(1), Seq: 1, OriginTime: 2, Hops: 0}
	ref := SignedBytes(&base)
	hopped := base
	hopped.Hops = 7
	if !bytes.Equal(SignedBytes(&hopped), ref) {
		t.Fatal("the hop count is signed: relays could not increment it")
	}
	for name, change := range map[string]func(*Message){
		"topic":  func(m *Message) { m.Topic = "b" },
		"data":   func(m *Message) { m.Data = []byte("e") },
		"origin": func(m *Message) { m.Origin = nid(2) },
		"seq":    func(m *Message) { m.Seq = 2 },
		"time":   func(m *Message) { m.OriginTime = 3 },
		// Moving a byte between topic and data must change the signed bytes too (length prefixes).
		"split": func(m *Message) { m.Topic, m.Data = "ad", nil },
	} {
		c := base
		change(&c)
		if bytes.Equal(SignedBytes(&c), ref) {
			t.Errorf("%s is not covered by the signature", name)
		}
	}
}

// TestRPCEncoderReusesItsStructsWithoutCarryingFieldsOver sends RPCs one after another through one encoder: each
// must decode to exactly what it was given (nothing left over from the RPC before), a message going to several
// peers is encoded once, a finished call keeps no reference to what it sent, and a warm encoder allocates nothing.
func TestRPCEncoderReusesItsStructsWithoutCarryingFieldsOver(t *testing.T) {
	m1 := &Message{Topic: "a", Data: []byte("first"), Origin: nid(1), Seq: 1, OriginTime: 10, Hops: 1, Signature: []byte("s1")}
	m2 := &Message{Topic: "b", Data: []byte("second"), Origin: nid(2), Seq: 2, OriginTime: 20, Hops: 3}
	var id1, id2 MsgID
	id1[0], id2[0] = 1, 2
	full := &Control{
		IHave: []IHave{{Topic: "a", IDs: []MsgID{id1, id2}}, {Topic: "b", IDs: []MsgID{id2}}},
		IWant: []MsgID{id1}, Graft: []string{"a"}, Prune: []Prune{{Topic: "b", Lazy: true}},
		Tree: []TreeInfo{{Topic: "a", Root: nid(3), RootRank: 4, Seq: 5, Dist: 2, Parent: nid(4), Path: []uint32{1, 2}, Upstream: nid(5), Size: 9, Deep: 2,
			Cuts: []TreeCut{{Parent: 7, Child: 8, TTL: 9}, {Parent: 1, Child: 2, TTL: 1}}, Sig: bytes.Repeat([]byte{3}, 64)}},
	}
	bare := &Control{Tree: []TreeInfo{{Topic: "b", Root: nid(6), Dist: 0}}}

	var e rpcEncoder
	roundTrip := func(rpc *messages.GossipRPC) *messages.GossipRPC {
		t.Helper()
		b, err := proto.Marshal(rpc)
		if err != nil {
			t.Fatal(err)
		}
		back := &messages.GossipRPC{}
		if err := proto.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		return back
	}
	wantMessages := func(got *messages.GossipRPC, want ...*Message) {
		t.Helper()
		if len(got.Messages) != len(want) {
			t.Fatalf("%d messages, want %d", len(got.Messages), len(want))
		}
		for i, w := range got.Messages {
			m, err := messageFromWire(w)
			if err != nil || !reflect.DeepEqual(m, want[i]) {
				t.Fatalf("message %d came back as %+v (%v), want %+v", i, m, err, want[i])
			}
		}
	}
	wantControl := func(got *messages.GossipRPC, want *Control) {
		t.Helper()
		if want == nil {
			if got.Control != nil {
				t.Fatalf("control %v, want none", got.Control)
			}
			return
		}
		if c := controlFromWire(got.Control, 100, 64); !reflect.DeepEqual(c, want) {
			t.Fatalf("control came back as %+v, want %+v", c, want)
		}
	}

	for round := range 3 {
		first := roundTrip(func() *messages.GossipRPC { rpc := e.begin(); e.addControl(full); e.addMessage(m1); return rpc }())
		wantControl(first, full)
		wantMessages(first, m1)
		shared := e.rpc.Messages[0]

		second := e.begin()
		e.addControl(bare)
		e.addMessage(m2)
		e.addMessage(m1)
		if e.rpc.Messages[1] != shared {
			t.Fatal("a message going to a second peer was encoded again")
		}
		back := roundTrip(second)
		wantControl(back, bare)
		wantMessages(back, m2, m1)

		third := roundTrip(e.begin())
		wantControl(third, nil)
		wantMessages(third)
		e.end()
		for _, w := range e.msgs.items {
			if w.Data != nil || w.Signature != nil {
				t.Fatalf("round %d: a finished call still holds a message: %v", round, w)
			}
		}
	}
	e.begin()
	e.addControl(full)
	e.end()
	for _, w := range e.trees.items {
		if w.Root != nil || w.Path != nil || w.Sig != nil {
			t.Fatalf("a finished call still holds a tree report: %v", w)
		}
	}

	allocs := testing.AllocsPerRun(100, func() {
		e.begin()
		e.addControl(full)
		e.addMessage(m1)
		e.begin()
		e.addControl(bare)
		e.addMessage(m1)
		e.end()
	})
	if allocs != 0 {
		t.Fatalf("a warm encoder allocated %v times per call", allocs)
	}
}

// TestWireSizesBoundTheEncoding checks the sizes sendAll splits RPCs by: a message's is exact, control's at least
// its encoding's.
func TestWireSizesBoundTheEncoding(t *testing.T) {
	m := &Message{Topic: "topic", Data: bytes.Repeat([]byte{7}, 300), Origin: nid(3), Seq: 1 << 40, OriginTime: -5,
		Hops: 3, Signature: make([]byte, 64)}
	c := &Control{
		IHave: []IHave{{Topic: "a", IDs: make([]MsgID, 7)}, {Topic: "bb", IDs: make([]MsgID, 1)}},
		IWant: make([]MsgID, 3), Graft: []string{"a", "ccc"}, Prune: []Prune{{Topic: "a", Lazy: true}},
		Tree: []TreeInfo{{Topic: "a", Root: nid(1), RootRank: 1 << 15, Seq: 1 << 62, Dist: 63, Parent: nid(2),
			Upstream: nid(4), Path: make([]uint32, maxTreePath), Size: maxTreeSize, Deep: maxTreeSize,
			Cuts: []TreeCut{{Parent: 1 << 31, Child: 1 << 31, TTL: 1 << 20}, {}}, Sig: make([]byte, 64)}},
	}
	var e rpcEncoder
	rpc := e.begin()
	e.addMessage(m)
	if got, want := messageWireSize(m), proto.Size(rpc); got != want {
		t.Errorf("messageWireSize = %d, encoded %d", got, want)
	}
	rpc = e.begin()
	e.addControl(c)
	if got, enc := controlWireBound(c), proto.Size(rpc); got < enc {
		t.Errorf("controlWireBound = %d, below the encoding's %d", got, enc)
	}
	e.end()
}

// A control too large for one RPC is split into parts that each fit, its entries all there, in order.
func TestSplitControlKeepsEveryEntryInPartsThatFit(t *testing.T) {
	c := &Control{}
	for i := range 300 {
		topic := fmt.Sprint("topic-", i)
		ih := IHave{Topic: topic}
		for j := range 50 {
			ih.IDs = append(ih.IDs, MsgID{byte(i), byte(j)})
		}
		c.IHave = append(c.IHave, ih)
		c.Graft = append(c.Graft, topic)
		c.Prune = append(c.Prune, Prune{Topic: topic})
		c.Tree = append(c.Tree, TreeInfo{Topic: topic, Root: nid(1), Dist: 1})
	}
	for i := range 5000 {
		c.IWant = append(c.IWant, MsgID{byte(i), byte(i >> 8), 7})
	}
	const limit = 16 << 10
	parts := splitControl(c, limit, messages.MaxGossipRPCIDs)
	if len(parts) < 2 {
		t.Fatalf("%d parts for a control of %d bytes", len(parts), controlWireBound(c))
	}
	var joined Control
	for i, p := range parts {
		if n := controlWireBound(p); n > limit {
			t.Fatalf("part %d: %d bytes, limit %d", i, n, limit)
		}
		joined.IHave = append(joined.IHave, p.IHave...)
		joined.IWant = append(joined.IWant, p.IWant...)
		joined.Graft = append(joined.Graft, p.Graft...)
		joined.Prune = append(joined.Prune, p.Prune...)
		joined.Tree = append(joined.Tree, p.Tree...)
	}
	if !reflect.DeepEqual(&joined, c) {
		t.Fatal("the parts do not add up to the control")
	}
	if small := (&Control{Graft: []string{"a"}}); len(splitControl(small, limit, messages.MaxGossipRPCIDs)) != 1 || splitControl(small, limit, messages.MaxGossipRPCIDs)[0] != small {
		t.Fatal("a control that fits is not taken as it is")
	}
}

// A control within the byte limit but over the ids a peer takes in one RPC is split too: each part holds at most
// maxIDs ids, IHAVEs' and IWANT's together, and the parts add up to the control (a relay with a raised MaxRPCSize
// and MaxIHaveLength sent RPCs its peers refused whole).
func TestSplitControlKeepsTheIDsOfEachPartUnderTheBound(t *testing.T) {
	c := &Control{Graft: []string{"g"}}
	for i := range 10 {
		ih := IHave{Topic: fmt.Sprint("topic-", i)}
		for j := range 300 {
			ih.IDs = append(ih.IDs, MsgID{byte(i), byte(j), byte(j >> 8)})
		}
		c.IHave = append(c.IHave, ih)
	}
	for i := range 2500 {
		c.IWant = append(c.IWant, MsgID{byte(i), byte(i >> 8), 9})
	}
	const maxIDs = 1000
	parts := splitControl(c, 4<<20, maxIDs)
	var joined Control
	for i, p := range parts {
		n := len(p.IWant)
		for _, ih := range p.IHave {
			n += len(ih.IDs)
		}
		if n > maxIDs {
			t.Fatalf("part %d holds %d ids, want at most %d", i, n, maxIDs)
		}
		joined.IHave = append(joined.IHave, p.IHave...)
		joined.IWant = append(joined.IWant, p.IWant...)
		joined.Graft = append(joined.Graft, p.Graft...)
	}
	if len(parts) < 6 || !reflect.DeepEqual(&joined, c) {
		t.Fatalf("%d parts that add up to the control: %v; want at least 6 (5500 ids)", len(parts), reflect.DeepEqual(&joined, c))
	}
}
