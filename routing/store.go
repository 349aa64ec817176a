package routing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// MaxStoreSize bounds the peer store file read at start.
const MaxStoreSize = 4 << 20

// ErrBadStore is wrapped by errors about a malformed peer store file.
var ErrBadStore = errors.New("routing: bad peer store")

// The peer store is the routing table's records on disk: the routing actor saves it periodically and when it stops,
// and the bootstrapper loads it at start, so that a restarted node rejoins without any bootnode.

// LoadStore reads the records of a peer store file. A missing file is an empty store, not an error. The records
// are not verified here: the routing actor verifies every record it is given.
func LoadStore(path string) ([]*messages.NodeRecord, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("routing: open peer store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("routing: peer store: %w", err)
	}
	if st.Size() > MaxStoreSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrBadStore, path, st.Size(), MaxStoreSize)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("routing: read peer store: %w", err)
	}
	var ps messages.PeerStore
	if err := proto.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadStore, path, err)
	}
	return ps.Records, nil
}

// SaveStore writes records to path atomically (temporary file and rename), creating the directory if needed.
func SaveStore(path string, records []*messages.NodeRecord, now time.Time) error {
	b, err := proto.Marshal(&messages.PeerStore{Records: records, SavedAt: now.Unix()})
	if err != nil {
		return fmt.Errorf("routing: encode peer store: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("routing: peer store directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".peers-*.tmp")
	if err != nil {
		return fmt.Errorf("routing: save peer store: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("routing: save peer store: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("routing: save peer store: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("routing: save peer store: %w", err)
	}
	return nil
}
