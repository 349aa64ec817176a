package messages

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func testID(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

func testMessage(size int) *GossipMessage {
	return &GossipMessage{
		Topic: "blocks", Data: testID(1, size), Origin: testID(2, 32), Seq: 1 << 40, OriginTime: 1_700_000_000_123_456_789,
		Hops: 3, Signature: testID(3, 64),
	}
}

func testControl() *GossipControl {
	return &GossipControl{
		Ihave: []*GossipIHave{
			{Topic: "blocks", Ids: [][]byte{testID(10, 20), testID(11, 20), testID(12, 20)}},
			{Topic: "txs", Ids: [][]byte{testID(13, 20)}},
			{Topic: "empty"},
		},
		Iwant: [][]byte{testID(20, 20), testID(21, 20), {}},
		Graft: []string{"blocks", "txs", ""},
		Prune: []*GossipPrune{{Topic: "old", Lazy: true}, {Topic: "gone"}},
		Tree: []*GossipTree{
			{Topic: "blocks", Root: testID(30, 32), Seq: 99, Dist: 2, Parent: testID(31, 32), RootRank: 7,
				Path: []uint32{0xdeadbeef, 1, 2}, Upstream: testID(32, 32), Size: 40, Deep: 3, Sig: testID(35, 64)},
			{Topic: "txs", Root: testID(33, 32), Seq: 1, Dist: 0, RootRank: 1, Size: 1},
			{Topic: "votes", Root: testID(34, 32), Dist: 5, Path: []uint32{5, 4, 3, 2, 1}},
		},
	}
}

// testRPCs are realistic RPCs, by name.
func testRPCs() map[string]*GossipRPC {
	return map[string]*GossipRPC{
		"empty":         {},
		"hello":         {Hello: true, Subscriptions: []*GossipSubscription{{Topic: "blocks", Subscribe: true}, {Topic: "txs", Subscribe: true}}},
		"subscriptions": {Subscriptions: []*GossipSubscription{{Topic: "blocks", Subscribe: true}, {Topic: "txs"}, {}}},
		"message":       {Messages: []*GossipMessage{testMessage(1024)}},
		"messages":      {Messages: []*GossipMessage{testMessage(100), testMessage(0), {Topic: "bare"}}},
		"control":       {Control: testControl()},
		"empty control": {Control: &GossipControl{}},
		"ihave":         {Control: &GossipControl{Ihave: []*GossipIHave{{Topic: "blocks", Ids: [][]byte{testID(1, 20), testID(2, 20)}}}}},
		"tree":          {Control: &GossipControl{Tree: []*GossipTree{{Topic: "blocks", Path: []uint32{1, 2, 3}}}}},
		"tree cuts": {Control: &GossipControl{Tree: []*GossipTree{
			{Topic: "a", Root: testID(1, 32), Cuts: []*GossipTreeCut{{Parent: 1, Child: 2, Ttl: 9}, {Parent: 3, Child: 4}, {}}},
			{Topic: "b", Path: []uint32{7}},
			{Topic: "c", Cuts: []*GossipTreeCut{{Parent: 0xffffffff, Child: 5, Ttl: 1}}},
		}}},
		"everything": {
			Hello:         true,
			Subscriptions: []*GossipSubscription{{Topic: "blocks", Subscribe: true}, {Topic: "txs"}},
			Control:       testControl(),
			Messages:      []*GossipMessage{testMessage(1024), testMessage(10)},
		},
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnmarshalGossipRPCTakesTheFastPath(t *testing.T) {
	for name, rpc := range testRPCs() {
		t.Run(name, func(t *testing.T) {
			b := marshal(t, rpc)
			fast, ok := unmarshalGossipRPCFast(b)
			if !ok {
				t.Fatal("fast path refused a well-formed RPC")
			}
			if !proto.Equal(fast, rpc) {
				t.Fatalf("fast path decoded\n%v\nwant\n%v", fast, rpc)
			}
			got, err := UnmarshalGossipRPC(b)
			if err != nil || !proto.Equal(got, rpc) {
				t.Fatalf("UnmarshalGossipRPC: %v, %v", got, err)
			}
			if name == "empty control" && got.Control == nil {
				t.Fatal("an empty control field decoded as absent")
			}
		})
	}
}

func TestUnmarshalGossipRPCDoesNotAliasItsInput(t *testing.T) {
	for name, rpc := range testRPCs() {
		b := marshal(t, rpc)
		got, err := UnmarshalGossipRPC(b)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 0xa5
		}
		if !proto.Equal(got, rpc) {
			t.Fatalf("%s: decoded message changed with its input", name)
		}
	}
}

func TestUnmarshalGossipRPCBytesFieldsDoNotOverlap(t *testing.T) {
	rpc := testRPCs()["everything"]
	got, err := UnmarshalGossipRPC(marshal(t, rpc))
	if err != nil {
		t.Fatal(err)
	}
	// An append to a bytes field reallocates rather than overwrite what follows it in the shared buffer.
	for _, m := range got.Messages {
		m.Data = append(m.Data, 0xff, 0xff, 0xff)
		m.Origin = append(m.Origin, 0xff)
	}
	for _, ih := range got.Control.Ihave {
		for i := range ih.Ids {
			ih.Ids[i] = append(ih.Ids[i], 0xff)
		}
		ih.Ids = append(ih.Ids, []byte{0xff}) // must not overwrite the next entry's first id
	}
	for _, tr := range got.Control.Tree {
		tr.Path = append(tr.Path, 0xffffffff)
	}
	for i, m := range got.Messages {
		if !bytes.Equal(m.Signature, rpc.Messages[i].Signature) || m.Topic != rpc.Messages[i].Topic {
			t.Fatalf("message %d changed by appends", i)
		}
	}
	for i, ih := range got.Control.Ihave {
		for j, id := range rpc.Control.Ihave[i].Ids {
			if !bytes.Equal(ih.Ids[j][:len(id)], id) {
				t.Fatalf("ihave %d id %d changed by appends", i, j)
			}
		}
	}
	for i, tr := range got.Control.Tree {
		if want := rpc.Control.Tree[i].Path; len(tr.Path) != len(want)+1 || !slices.Equal(tr.Path[:len(want)], want) {
			t.Fatalf("tree %d path %v, want %v and the appended element", i, tr.Path, want)
		}
	}
}

// malformedRPCs are bytes the fast path must leave to proto.Unmarshal, by name; some of them proto accepts.
func malformedRPCs(t testing.TB) map[string][]byte {
	ctl := marshal(t, &GossipControl{Graft: []string{"a"}})
	tag := func(b []byte, num protowire.Number, typ protowire.Type) []byte {
		return protowire.AppendTag(b, num, typ)
	}
	bytesField := func(b []byte, num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(tag(b, num, protowire.BytesType), v)
	}
	tree := func(fields []byte) []byte {
		return bytesField(nil, 2, bytesField(nil, 5, fields))
	}
	return map[string][]byte{
		"unknown field":          protowire.AppendVarint(tag(nil, 9, protowire.VarintType), 1),
		"wrong wire type":        protowire.AppendFixed32(tag(nil, 4, protowire.Fixed32Type), 1),
		"hello as bytes":         bytesField(nil, 4, []byte{1}),
		"group":                  tag(tag(nil, 9, protowire.StartGroupType), 9, protowire.EndGroupType),
		"control twice":          bytesField(bytesField(nil, 2, ctl), 2, ctl),
		"invalid UTF-8":          bytesField(nil, 1, bytesField(nil, 1, []byte{0xff, 0xfe})),
		"invalid UTF-8 graft":    bytesField(nil, 2, bytesField(nil, 3, []byte{0xc0})),
		"unknown message field":  bytesField(nil, 3, protowire.AppendVarint(tag(nil, 8, protowire.VarintType), 1)),
		"prune lazy as bytes":    bytesField(nil, 2, bytesField(nil, 4, bytesField(nil, 2, nil))),
		"truncated varint":       {0x20, 0x80},
		"truncated length":       {0x0a, 0x05, 0x01},
		"field number 0":         {0x00, 0x01},
		"field number above max": protowire.AppendVarint(protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 1),
		"unpacked path":          tree(protowire.AppendFixed32(tag(nil, 7, protowire.Fixed32Type), 7)),
		"odd packed path":        tree(bytesField(nil, 7, []byte{1, 2, 3})),
		"cut parent as varint":   tree(bytesField(nil, 11, protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1))),
		"cut ttl as fixed32":     tree(bytesField(nil, 11, protowire.AppendFixed32(tag(nil, 3, protowire.Fixed32Type), 1))),
		"unknown cut field":      tree(bytesField(nil, 11, protowire.AppendVarint(tag(nil, 4, protowire.VarintType), 1))),
		"truncated cut":          tree(bytesField(nil, 11, append(tag(nil, 2, protowire.Fixed32Type), 1, 2))),
		// A known field with another wire type is an unknown field to proto: none may be taken as the field.
		"subscription as varint": protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1),
		"iwant id as varint":     bytesField(nil, 2, protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 1)),
		"ihave id as varint":     bytesField(nil, 2, bytesField(nil, 1, protowire.AppendVarint(tag(nil, 2, protowire.VarintType), 1))),
		"path as varint":         tree(protowire.AppendVarint(tag(nil, 7, protowire.VarintType), 7)),
		// 4 bytes as a varint, 1 as a fixed32 read as a varint: each reads whole as the other type.
		"cut parent as a 4-byte varint":      tree(bytesField(nil, 11, protowire.AppendVarint(tag(nil, 1, protowire.VarintType), 1<<21))),
		"cut ttl as a varint-shaped fixed32": tree(bytesField(nil, 11, protowire.AppendFixed32(tag(nil, 3, protowire.Fixed32Type), 0x01818181))),
		"unknown tree field":                 tree(protowire.AppendVarint(tag(nil, 13, protowire.VarintType), 1)),
		"invalid UTF-8 message topic":        bytesField(nil, 3, bytesField(nil, 1, []byte{0xff})),
		"invalid UTF-8 tree topic":           tree(bytesField(nil, 1, []byte{0xe2, 0x82})),
		"invalid UTF-8 ihave topic":          bytesField(nil, 2, bytesField(nil, 1, bytesField(nil, 1, []byte{0xff}))),
	}
}

func TestUnmarshalGossipRPCFallsBackToProto(t *testing.T) {
	for name, b := range malformedRPCs(t) {
		if _, ok := unmarshalGossipRPCFast(b); ok {
			t.Errorf("%s: taken by the fast path", name)
		}
		checkAgainstProto(t, b)
	}
}

func TestUnmarshalGossipRPCMatchesProtoOnRepeatedScalars(t *testing.T) {
	// proto3: the last occurrence of a singular scalar, string or bytes field wins; packed chunks concatenate.
	m1 := marshal(t, &GossipMessage{Topic: "a", Data: []byte{1}, Seq: 1, Hops: 9})
	m2 := marshal(t, &GossipMessage{Topic: "b", Data: []byte{}, Seq: 2})
	t1 := marshal(t, &GossipTree{Topic: "x", Path: []uint32{1, 2}, Dist: 3})
	t2 := marshal(t, &GossipTree{Topic: "y", Path: []uint32{3}})
	b := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), append(m1, m2...))
	b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType),
		protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), append(t1, t2...)))
	b = protowire.AppendVarint(protowire.AppendTag(b, 4, protowire.VarintType), 1)
	b = protowire.AppendVarint(protowire.AppendTag(b, 4, protowire.VarintType), 0)
	if _, ok := unmarshalGossipRPCFast(b); !ok {
		t.Fatal("fast path refused repeated scalars")
	}
	checkAgainstProto(t, b)
}

// checkAgainstProto fails t unless UnmarshalGossipRPC and proto.Unmarshal agree on b.
func checkAgainstProto(t testing.TB, b []byte) {
	t.Helper()
	got, err := UnmarshalGossipRPC(b)
	if errors.Is(err, ErrGossipRPCTooLarge) {
		return // refused by the limits, which proto.Unmarshal does not have
	}
	var want GossipRPC
	wantErr := proto.Unmarshal(b, &want)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("UnmarshalGossipRPC error %v, proto.Unmarshal error %v", err, wantErr)
	}
	if err == nil && !proto.Equal(got, &want) {
		t.Fatalf("UnmarshalGossipRPC decoded\n%v\nproto.Unmarshal\n%v", got, &want)
	}
}

func TestUnmarshalGossipRPCAllocations(t *testing.T) {
	for _, c := range []struct {
		name string
		rpc  *GossipRPC
		max  float64
	}{
		// proto.Unmarshal: 7; this: 5 (copy, strings, RPC, the message pointer slice and its element array).
		{"1 KiB message", &GossipRPC{Messages: []*GossipMessage{testMessage(1024)}}, 5},
		// proto.Unmarshal: 24; this: 9 (copy, strings, RPC with control, ihave and tree: pointer slice and array
		// each, ids, path).
		{"control", &GossipRPC{Control: &GossipControl{
			Ihave: []*GossipIHave{{Topic: "blocks", Ids: func() [][]byte {
				ids := make([][]byte, 8)
				for i := range ids {
					ids[i] = testID(byte(i), 20)
				}
				return ids
			}()}},
			Tree: []*GossipTree{{Topic: "blocks", Root: testID(1, 32), Seq: 5, Dist: 3, Parent: testID(2, 32),
				RootRank: 4, Path: []uint32{1, 2, 3}, Upstream: testID(3, 32), Size: 10, Deep: 1}},
		}}, 9},
	} {
		b := marshal(t, c.rpc)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := UnmarshalGossipRPC(b); err != nil {
				t.Fatal(err)
			}
		})
		ref := testing.AllocsPerRun(100, func() {
			if err := proto.Unmarshal(b, &GossipRPC{}); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %v allocations, proto.Unmarshal %v", c.name, allocs, ref)
		if allocs > c.max {
			t.Errorf("%s: %v allocations, want at most %v", c.name, allocs, c.max)
		}
	}
}

// waitCollected runs the GC until freed is closed (by a cleanup), failing with msg after 5 s.
func waitCollected(t *testing.T, freed <-chan struct{}, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		select {
		case <-freed:
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		runtime.Gosched()
	}
}

// TestUnmarshalGossipRPCStringsDoNotKeepThePayload keeps only the topics of a decoded RPC: the copy holding its
// 64 KiB payload must be collected, or a relay keeping a topic as a map key would keep a payload alive with it.
func TestUnmarshalGossipRPCStringsDoNotKeepThePayload(t *testing.T) {
	b := marshal(t, &GossipRPC{
		Subscriptions: []*GossipSubscription{{Topic: "blocks", Subscribe: true}},
		Messages:      []*GossipMessage{testMessage(64 << 10)},
	})
	freed := make(chan struct{})
	sub, topic := func() (string, string) {
		m, ok := unmarshalGossipRPCFast(b)
		if !ok {
			t.Fatal("fast path refused a well-formed RPC")
		}
		runtime.AddCleanup(&m.Messages[0].Data[0], func(ch chan struct{}) { close(ch) }, freed)
		return m.Subscriptions[0].Topic, m.Messages[0].Topic
	}()
	waitCollected(t, freed, "the payload's copy is still reachable through the topics kept")
	if sub != "blocks" || topic != "blocks" {
		t.Fatalf("topics kept: %q, %q", sub, topic)
	}
}

// TestUnmarshalGossipRPCKeptTopicDoesNotPinOtherStrings: a relay keeps a received message's Topic (message cache,
// pending validation) and a subscription's Topic (as map keys), accounting only len(topic). A short kept topic must
// not keep the RPC's other strings alive: neither a long one (a 512 KiB graft the relay ignores) nor the last of
// many short ones (2000 grafts of 100 bytes).
func TestUnmarshalGossipRPCKeptTopicDoesNotPinOtherStrings(t *testing.T) {
	var short []string
	for i := range 2000 {
		short = append(short, fmt.Sprintf("%0100d", i))
	}
	for name, grafts := range map[string][]string{"long": {strings.Repeat("x", 512<<10)}, "many short": short} {
		b := marshal(t, &GossipRPC{
			Messages: []*GossipMessage{testMessage(16)},
			Control:  &GossipControl{Graft: grafts},
		})
		freed := make(chan struct{})
		topic := func() string {
			m, ok := unmarshalGossipRPCFast(b)
			if !ok {
				t.Fatal("fast path refused a well-formed RPC")
			}
			g := m.Control.Graft[len(grafts)-1]
			runtime.AddCleanup(unsafe.StringData(g), func(ch chan struct{}) { close(ch) }, freed)
			return m.Messages[0].Topic
		}()
		waitCollected(t, freed, name+": a kept 6-byte message topic keeps the RPC's other strings alive")
		runtime.KeepAlive(topic)
	}
}

// FuzzUnmarshalGossipRPC checks that UnmarshalGossipRPC never panics and agrees with proto.Unmarshal: it fails
// exactly when proto.Unmarshal does, and otherwise decodes an equal message.
func FuzzUnmarshalGossipRPC(f *testing.F) {
	rpcs, bad := testRPCs(), malformedRPCs(f)
	for _, name := range slices.Sorted(maps.Keys(rpcs)) {
		f.Add(marshal(f, rpcs[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(bad)) {
		f.Add(bad[name])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkAgainstProto(t, b)
	})
}

func BenchmarkUnmarshalGossipRPC(b *testing.B) {
	rpcs := testRPCs()
	for _, name := range []string{"message", "control", "everything"} {
		data := marshal(b, rpcs[name])
		b.Run(fmt.Sprintf("%s/fast", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := UnmarshalGossipRPC(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/proto", name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := proto.Unmarshal(data, &GossipRPC{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUnmarshalGossipRPCMessageKeepsOnlyItself decodes an RPC carrying a message and a large control: keeping the
// message's data must not keep the control's ids alive, nor keeping an id the message's data. A message kept in a
// cache (bounded by its own size) must not keep what rode with it.
func TestUnmarshalGossipRPCMessageKeepsOnlyItself(t *testing.T) {
	ids := make([][]byte, 1000)
	for i := range ids {
		ids[i] = testID(byte(i), 32)
	}
	b := marshal(t, &GossipRPC{
		Messages: []*GossipMessage{testMessage(1024)},
		Control:  &GossipControl{Ihave: []*GossipIHave{{Topic: "blocks", Ids: ids}}},
	})
	collected := func(keep func(m *GossipRPC) (any, *byte)) {
		t.Helper()
		freed := make(chan struct{})
		kept := func() any {
			m, ok := unmarshalGossipRPCFast(b)
			if !ok {
				t.Fatal("fast path refused a well-formed RPC")
			}
			k, watched := keep(m)
			runtime.AddCleanup(watched, func(ch chan struct{}) { close(ch) }, freed)
			return k
		}()
		waitCollected(t, freed, "bytes of another part of the RPC are still reachable through the part kept")
		runtime.KeepAlive(kept)
	}
	collected(func(m *GossipRPC) (any, *byte) { return m.Messages[0].Data, &m.Control.Ihave[0].Ids[500][0] })
	collected(func(m *GossipRPC) (any, *byte) { return m.Control.Ihave[0].Ids[500], &m.Messages[0].Data[0] })
}

// An RPC of more elements than the limits is refused before they are decoded, whichever decoder would take it; one
// at the limits is taken. 1 MiB of empty subscriptions, messages or tree reports decoded to 38-113 MB.
func TestUnmarshalGossipRPCRefusesAnRPCOverTheLimits(t *testing.T) {
	repeat := func(n int, elem ...byte) []byte {
		var b []byte
		for range n {
			b = append(b, elem...)
		}
		return b
	}
	control := func(inner []byte) []byte {
		return append(protowire.AppendVarint([]byte{0x12}, uint64(len(inner))), inner...)
	}
	for name, c := range map[string]struct {
		b    []byte
		want bool // taken
	}{
		"subscriptions at the limit":   {repeat(maxRPCSubs, 0x0a, 0x00), true},
		"subscriptions over the limit": {repeat(maxRPCSubs+1, 0x0a, 0x00), false},
		"messages over the limit":      {repeat(maxRPCMessages+1, 0x1a, 0x00), false},
		"tree reports over the limit":  {control(repeat(maxRPCControl+1, 0x2a, 0x00)), false},
		"1 MiB of empty messages":      {repeat(1<<19, 0x1a, 0x00), false},
		// An unknown field sends it to proto.Unmarshal, which is not handed one this large.
		"a large RPC in another shape": {append(repeat(maxFallbackBytes/2, 0x0a, 0x00), 0x78, 0x01), false},
	} {
		m, err := UnmarshalGossipRPC(c.b)
		if taken := err == nil; taken != c.want {
			t.Errorf("%s: taken %v (%v), want %v", name, taken, err, c.want)
		}
		if !c.want && !errors.Is(err, ErrGossipRPCTooLarge) {
			t.Errorf("%s: %v, want ErrGossipRPCTooLarge", name, err)
		}
		if c.want && len(m.Subscriptions) != maxRPCSubs {
			t.Errorf("%s: %d subscriptions decoded", name, len(m.Subscriptions))
		}
	}
}

// A bool is any varint, not 0 or 1 only: 2 and 2^40 are true, as proto reads them, on the fast path.
func TestUnmarshalGossipRPCReadsBoolsAsProtoDoes(t *testing.T) {
	for _, v := range []uint64{2, 1 << 40} {
		flag := func(num protowire.Number) []byte {
			return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
		}
		field := func(b []byte, num protowire.Number, inner []byte) []byte {
			return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), inner)
		}
		b := flag(4)                            // hello
		b = field(b, 1, flag(2))                // a subscription's subscribe
		b = field(b, 2, field(nil, 4, flag(2))) // a prune's lazy
		m, ok := unmarshalGossipRPCFast(b)
		if !ok {
			t.Fatalf("value %d: the fast path refused the RPC", v)
		}
		if !m.Hello || !m.Subscriptions[0].Subscribe || !m.Control.Prune[0].Lazy {
			t.Fatalf("value %d: decoded %v, want every flag true", v, m)
		}
		checkAgainstProto(t, b)
	}
}

// Each kind of element has its limit (IHAVEs, GRAFTs, PRUNEs, cuts summed over the reports), and the generic
// decoder's byte bound takes an RPC of exactly maxFallbackBytes.
func TestUnmarshalGossipRPCRefusesEachKindOverItsLimit(t *testing.T) {
	repeat := func(n int, elem ...byte) []byte { return bytes.Repeat(elem, n) }
	field := func(num protowire.Number, inner []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), inner)
	}
	for name, b := range map[string][]byte{
		"IHAVEs over the limit":         field(2, repeat(maxRPCControl+1, 0x0a, 0x00)),
		"GRAFTs over the limit":         field(2, repeat(maxRPCControl+1, 0x1a, 0x00)),
		"PRUNEs over the limit":         field(2, repeat(maxRPCControl+1, 0x22, 0x00)),
		"cuts over the limit, one tree": field(2, field(5, repeat(maxRPCCuts+1, 0x5a, 0x00))),
		"cuts over the limit, summed":   field(2, append(field(5, repeat(maxRPCCuts/2, 0x5a, 0x00)), field(5, repeat(maxRPCCuts/2+1, 0x5a, 0x00))...)),
		"IWANT ids over the limit":      field(2, repeat(MaxGossipRPCIDs+1, 0x12, 0x00)),
		"ids over the limit, summed":    field(2, append(field(1, repeat(MaxGossipRPCIDs/2, 0x12, 0x00)), repeat(MaxGossipRPCIDs/2+1, 0x12, 0x00)...)),
	} {
		if _, err := UnmarshalGossipRPC(b); !errors.Is(err, ErrGossipRPCTooLarge) {
			t.Errorf("%s: %v, want ErrGossipRPCTooLarge", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"cuts at the limit": field(2, field(5, repeat(maxRPCCuts, 0x5a, 0x00))),
		"ids at the limit":  field(2, append(field(1, repeat(MaxGossipRPCIDs/2, 0x12, 0x00)), repeat(MaxGossipRPCIDs/2, 0x12, 0x00)...)),
		// An unknown field (15, varint) sends it to proto.Unmarshal, which takes maxFallbackBytes.
		"maxFallbackBytes in another shape": append(repeat(maxFallbackBytes/2-1, 0x0a, 0x00), 0x78, 0x01),
	} {
		if _, err := UnmarshalGossipRPC(b); err != nil {
			t.Errorf("%s (%d bytes): %v, want it taken", name, len(b), err)
		}
	}
}
