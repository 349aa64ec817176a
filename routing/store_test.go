package routing

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
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

// A store holds at most MaxStoreRecords records when read back, the first ones; the temporary files of its path
// that a crash left behind are removed by the next save, and those of another store are left alone.
func TestStoreBoundsRecordsAndCleansUpAfterACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.pb")
	leftover := filepath.Join(dir, ".peers.pb-123.tmp")
	others := filepath.Join(dir, ".other.pb-456.tmp")
	for _, f := range []string{leftover, others} {
		if err := os.WriteFile(f, []byte("half a store"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-2 * staleTempAge)
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
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
	if _, err := os.Stat(others); err != nil {
		t.Fatalf("the temporary file of another store was removed: %v", err)
	}
	out, err := LoadStore(path)
	if err != nil || len(out) != MaxStoreRecords || out[0].GetSeq() != 0 || out[len(out)-1].GetSeq() != MaxStoreRecords-1 {
		t.Fatalf("read back %d records (err %v), want the first %d", len(out), err, MaxStoreRecords)
	}
}

// Nodes whose peer stores share a directory save at the same time without failing each other's saves: a save
// removed every temporary file of the directory, another node's save under way included, whose rename then failed
// (about half of 400 concurrent saves).
func TestStoresSharingADirectorySaveConcurrently(t *testing.T) {
	dir := t.TempDir()
	recs := []*messages.NodeRecord{{Id: make([]byte, 32), Seq: 1, Addrs: []string{"10.0.0.1:1"}, Signature: []byte{1}}}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for _, name := range []string{"a.pb", "b.pb"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if err := SaveStore(filepath.Join(dir, name), recs, time.Now()); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a save failed: %v", err)
	}
}

// A store path that is no regular file is refused at once with ErrBadStore: a FIFO with no writer blocked the open,
// and with it the bootstrapper's join and the node's Close.
func TestStoreRefusesAPathThatIsNoRegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "peers.pb")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{fifo, dir} {
		done := make(chan error, 1)
		go func() { _, err := LoadStore(path); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrBadStore) {
				t.Fatalf("LoadStore(%s): got %v, want ErrBadStore", path, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("LoadStore(%s) still blocked after 10 s", path)
		}
	}
}

// A peer store file of exactly MaxStoreSize bytes is read; one byte more is refused.
func TestStoreOfMaxStoreSizeIsRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.pb")
	// A PeerStore of one field unknown to it (15, bytes) of n bytes: a tag byte, a 4-byte length, the bytes.
	padded := func(n int) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, 15, protowire.BytesType), make([]byte, n-5))
	}
	for _, c := range []struct {
		size int
		want error
	}{{MaxStoreSize, nil}, {MaxStoreSize + 1, ErrBadStore}} {
		b := padded(c.size)
		if len(b) != c.size {
			t.Fatalf("built %d bytes, want %d", len(b), c.size)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadStore(path); !errors.Is(err, c.want) {
			t.Fatalf("a store of %d bytes: %v, want %v", c.size, err, c.want)
		}
	}
}
