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
