package routing

import (
	"errors"
	"testing"

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
