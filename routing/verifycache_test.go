package routing

import (
	"errors"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

func TestVerifiedRecordsRejectsForgeryOfACachedRecord(t *testing.T) {
	id, _ := session.GenerateIdentity()
	rec, err := NewRecord(id, 5, []string{"10.0.0.1:30700"})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifiedRecords(16)
	if _, err := v.entry(rec); err != nil {
		t.Fatal(err)
	}
	if e, err := v.entry(rec); err != nil || e.ID != id.NodeID() || e.Addr != "10.0.0.1:30700" {
		t.Fatalf("cached record: %v %v", e, err)
	}
	forged := proto.Clone(rec).(*messages.NodeRecord)
	forged.Addrs = []string{"6.6.6.6:30700"}
	if _, err := v.entry(forged); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged address with a cached signature: %v, want ErrBadSignature", err)
	}
	split := proto.Clone(rec).(*messages.NodeRecord)
	split.Addrs = []string{"10.0.0.1:3070", "0"} // the same bytes, cut elsewhere
	if _, err := v.entry(split); err == nil {
		t.Fatal("a cached record with its addresses cut differently was accepted")
	}
	resigned := proto.Clone(rec).(*messages.NodeRecord)
	resigned.Signature = append(resigned.Signature, 0)
	if _, err := v.entry(resigned); err == nil {
		t.Fatal("a cached record with bytes added to its signature was accepted")
	}
	bumped := proto.Clone(rec).(*messages.NodeRecord)
	bumped.Seq = 6
	if _, err := v.entry(bumped); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged seq with a cached signature: %v", err)
	}
}

// TestRecordsKeepOnlyTheirSignedFields pads a signed record with a field its signature does not cover, as any peer
// relaying it could: the entry keeps the record as signed, on the first check and from the cache, so the padding is
// neither served again nor stored.
func TestRecordsKeepOnlyTheirSignedFields(t *testing.T) {
	id, _ := session.GenerateIdentity()
	rec, err := NewRecord(id, 5, []string{"10.0.0.1:30700"})
	if err != nil {
		t.Fatal(err)
	}
	clean, err := proto.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	padded := protowire.AppendTag(slices.Clone(clean), 99, protowire.BytesType)
	padded = protowire.AppendBytes(padded, make([]byte, 50_000))
	var bloated messages.NodeRecord
	if err := proto.Unmarshal(padded, &bloated); err != nil {
		t.Fatal(err)
	}
	v := newVerifiedRecords(16)
	for _, pass := range []string{"verified", "cached"} {
		e, err := v.entry(&bloated)
		if err != nil {
			t.Fatalf("%s: %v", pass, err)
		}
		if b, _ := proto.Marshal(e.Record); len(b) != len(clean) || !proto.Equal(e.Record, rec) {
			t.Fatalf("%s: the entry's record encodes to %d bytes, want the %d signed", pass, len(b), len(clean))
		}
	}
	if e, err := EntryFromRecord(&bloated); err != nil || len(e.Record.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("EntryFromRecord kept the padding: %v", err)
	}
	if e, err := v.entry(rec); err != nil || e.Record != rec {
		t.Fatalf("a record with only signed fields is not taken as it is: %v", err)
	}
}

// TestVerifiedRecordsRefuseARecordOlderThanOneVerified: once a node's record of seq 7 verified, its genuine record
// of seq 5 (replayed: the node has moved since) is stale wherever it comes from, and a reply whose sender record
// is stale is not taken for a forgery (the peer's clock may have gone back).
func TestVerifiedRecordsRefuseARecordOlderThanOneVerified(t *testing.T) {
	id, _ := session.GenerateIdentity()
	old, _ := NewRecord(id, 5, []string{"10.0.0.1:30700"})
	cur, _ := NewRecord(id, 7, []string{"10.0.0.2:30700"})
	v := newVerifiedRecords(16)
	if _, err := v.entry(old); err != nil {
		t.Fatal(err)
	}
	if e, err := v.entry(cur); err != nil || e.Addr != "10.0.0.2:30700" {
		t.Fatalf("the newer record: %v %v", e, err)
	}
	for _, pass := range []string{"first", "again"} {
		if _, err := v.entry(old); !errors.Is(err, ErrStaleRecord) {
			t.Fatalf("%s replay of seq 5 after seq 7: %v, want ErrStaleRecord", pass, err)
		}
	}
	if e, err := v.entry(cur); err != nil || e.Addr != "10.0.0.2:30700" {
		t.Fatalf("the newer record from the cache: %v %v", e, err)
	}
	if err := v.checkReply(id.NodeID(), &messages.Nodes{Sender: old}); err != nil {
		t.Fatalf("a reply with a stale sender record: %v, want no violation", err)
	}
	// The same stale record sent by another node as its own is a forgery, as a fresh one is: the stale check came
	// before the id's and let it pass.
	if err := v.checkReply(identity(t, 9).NodeID(), &messages.Nodes{Sender: old}); !errors.Is(err, ErrForgedSender) {
		t.Fatalf("a reply whose sender record is another node's stale one: %v, want ErrForgedSender", err)
	}
}

// A reply may carry up to MaxReplyRecords records whatever the asker's K (a node with a larger K answers with
// more); more is a violation.
func TestRepliesMayCarryUpToMaxReplyRecords(t *testing.T) {
	v := newVerifiedRecords(16)
	from := identity(t, 9).NodeID()
	records := func(n int) *messages.Nodes {
		return &messages.Nodes{Records: make([]*messages.NodeRecord, n)}
	}
	if err := v.checkReply(from, records(DefaultTableConfig().K+10)); err != nil {
		t.Fatalf("a reply of K+10 records from a node with a larger K: %v", err)
	}
	if err := v.checkReply(from, records(MaxReplyRecords)); err != nil {
		t.Fatalf("a reply of MaxReplyRecords records: %v", err)
	}
	if err := v.checkReply(from, records(MaxReplyRecords+1)); !errors.Is(err, ErrOversizedReply) {
		t.Fatalf("a reply over MaxReplyRecords: %v, want ErrOversizedReply", err)
	}
	if err := v.checkReply(from, &messages.Nodes{Registered: make([]*messages.NodeRecord, MaxReplyRecords)}); err != nil {
		t.Fatalf("a reply of MaxReplyRecords registered records: %v", err)
	}
	if err := v.checkReply(from, &messages.Nodes{Registered: make([]*messages.NodeRecord, MaxReplyRecords+1)}); !errors.Is(err, ErrOversizedReply) {
		t.Fatalf("a reply over MaxReplyRecords registered records: %v, want ErrOversizedReply", err)
	}
	cfg := DefaultConfig()
	cfg.Table.K = MaxReplyRecords + 1
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("K over MaxReplyRecords: %v, want ErrInvalidConfig", err)
	}
	cfg = DefaultConfig()
	cfg.TopicRegistrations = MaxReplyRecords + 1
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("TopicRegistrations over MaxReplyRecords: %v, want ErrInvalidConfig", err)
	}
}

func TestVerifiedRecordsIsBounded(t *testing.T) {
	v := newVerifiedRecords(4)
	for i := 0; i < 10; i++ {
		id, _ := session.GenerateIdentity()
		rec, _ := NewRecord(id, 1, []string{"10.0.0.1:1"})
		if _, err := v.entry(rec); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.m) > 4 {
		t.Fatalf("cache holds %d records, bound 4", len(v.m))
	}
}

// TestVerifiedRecordsTakesACachedRecordWithoutAllocating checks that the cached path costs no allocation: the
// answers of every lookup carry up to 16 records, most of them cached, and building each one's digest on the heap
// was 7 % of node sim's allocated bytes.
func TestVerifiedRecordsTakesACachedRecordWithoutAllocating(t *testing.T) {
	id, _ := session.GenerateIdentity()
	rec, err := NewRecord(id, 5, []string{"10.0.0.1:30700", "[2001:db8::1]:30700"})
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifiedRecords(16)
	if _, err := v.entry(rec); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, err := v.entry(rec); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("a cached record cost %v allocations, want 0", allocs)
	}
}
