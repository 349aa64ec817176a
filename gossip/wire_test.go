package gossip

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"github.com/actormesh/actormesh/messages"
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
			{Topic: "a", Root: nid(1).Bytes(), Seq: 3, Dist: 1, Parent: nid(1).Bytes(), RootRank: 7, Path: []uint32{5, 9}, Upstream: nid(4).Bytes(), Size: 30, Deep: maxTreeSize + 1},
			{Topic: "a", Root: nid(1).Bytes(), Dist: 1, RootRank: maxTreeRank + 1}, // beyond the rank bound
			{Topic: "a", Root: []byte{1}, Dist: 1},                                           // root is not a NodeID
			{Topic: "a", Root: nid(1).Bytes(), Dist: maxTreeDist},                            // beyond the distance bound
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Parent: []byte("not a node id")},     // bad parent
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Path: make([]uint32, maxTreePath+1)}, // path too long
			{Topic: "a", Root: nid(1).Bytes(), Dist: 2, Upstream: []byte{4}},                 // bad upstream
		},
	}
	c := controlFromWire(w, 10)
	if len(c.IHave) != 1 || len(c.IHave[0].IDs) != 10 {
		t.Fatalf("IHAVE: %d entries, %d ids; want 1 entry capped at 10 ids", len(c.IHave), len(c.IHave[0].IDs))
	}
	if len(c.IWant) != 10 {
		t.Fatalf("IWANT: %d ids, want the well-formed ones capped at 10", len(c.IWant))
	}
	if len(c.Tree) != 1 || c.Tree[0].Root != nid(1) || c.Tree[0].Parent != nid(1) || c.Tree[0].Seq != 3 ||
		c.Tree[0].RootRank != 7 || !slices.Equal(c.Tree[0].Path, []uint32{5, 9}) || c.Tree[0].Upstream != nid(4) ||
		c.Tree[0].Size != 30 || c.Tree[0].Deep != maxTreeSize {
		t.Fatalf("tree entries: %+v, want only the well-formed one", c.Tree)
	}
	if len(c.Graft) != 1 || len(c.Prune) != 1 || !c.Prune[0].Lazy {
		t.Fatalf("graft/prune: %+v %+v", c.Graft, c.Prune)
	}

	// Round trip of what the router sends.
	back := &messages.GossipControl{}
	controlToWire(back, c)
	again := controlFromWire(back, 10)
	if len(again.IHave[0].IDs) != 10 || len(again.IWant) != 10 || len(again.Tree) != 1 || !reflect.DeepEqual(again.Tree[0], c.Tree[0]) {
		t.Fatalf("round trip lost entries: %+v", again)
	}
}

func TestMessageFromWireRejectsBadOriginAndEmptyTopic(t *testing.T) {
	good := &messages.GossipMessage{Topic: "a", Data: []byte("x"), Origin: nid(1).Bytes(), Seq: 1, OriginTime: 5, Hops: 2}
	m, err := messageFromWire(good)
	if err != nil || m.Origin != nid(1) || m.Hops != 2 || !bytes.Equal(messageToWire(m).Data, good.Data) {
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
