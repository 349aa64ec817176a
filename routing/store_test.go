package routing

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

func TestStoreRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "peers.pb")
	recs, err := LoadStore(path)
	if err != nil || len(recs) != 0 {
		t.Fatalf("missing store: %v %v", recs, err)
	}
	in := []*messages.NodeRecord{{Id: make([]byte, 32), Seq: 3, Addrs: []string{"10.0.0.1:1"}, Signature: []byte{1}}}
	if err := SaveStore(path, in, time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	out, err := LoadStore(path)
	if err != nil || len(out) != 1 || !proto.Equal(out[0], in[0]) {
		t.Fatalf("round trip: %v %v", out, err)
	}
}

func TestStoreRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.pb")
	if err := os.WriteFile(path, []byte{0xff, 0xff, 0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadStore(path); !errors.Is(err, ErrBadStore) {
		t.Fatalf("got %v, want ErrBadStore", err)
	}
}

// A store holds at most MaxStoreRecords records when read back, the first ones; temporary files a crash left
// behind are removed by the next save.
func TestStoreBoundsRecordsAndCleansUpAfterACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.pb")
	leftover := filepath.Join(dir, ".peers-123.tmp")
	if err := os.WriteFile(leftover, []byte("half a store"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := make([]*messages.NodeRecord, MaxStoreRecords+10)
	for i := range in {
		in[i] = &messages.NodeRecord{Id: make([]byte, 32), Seq: uint64(i), Addrs: []string{"10.0.0.1:1"}, Signature: []byte{1}}
	}
	if err := SaveStore(path, in, time.Unix(100, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the crash's temporary file is still there: %v", err)
	}
	out, err := LoadStore(path)
	if err != nil || len(out) != MaxStoreRecords || out[0].GetSeq() != 0 || out[len(out)-1].GetSeq() != MaxStoreRecords-1 {
		t.Fatalf("read back %d records (err %v), want the first %d", len(out), err, MaxStoreRecords)
	}
}
