package routing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// MaxStoreSize bounds the peer store file read at start.
const MaxStoreSize = 4 << 20

// MaxStoreRecords bounds the records taken from a peer store file (the first ones): the routing actor verifies each
// one it is given (~30 µs), and a file of MaxStoreSize may hold ~38 000.
const MaxStoreRecords = 2048

// ErrBadStore is wrapped by errors about a malformed peer store file.
var ErrBadStore = errors.New("routing: bad peer store")

// The peer store is the routing table's records on disk: the routing actor saves it periodically and when it stops,
// and the bootstrapper loads it at start, so that a restarted node rejoins without any bootnode.

// LoadStore reads the records of a peer store file, at most MaxStoreRecords of them. A missing file is an empty
// store, not an error; a path that is no regular file (a FIFO, a device, a directory) is ErrBadStore. The records are
// not verified here: the routing actor verifies every record it is given.
func LoadStore(path string) ([]*messages.NodeRecord, error) {
	// Opened without blocking and checked once open, as session.LoadIdentity opens a key: a FIFO in the store's
	// place blocked the open until a writer came, the bootstrapper's join with it, and Close waited for it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
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
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s)", ErrBadStore, path, st.Mode().Type())
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
	if len(ps.Records) > MaxStoreRecords {
		ps.Records = ps.Records[:MaxStoreRecords]
	}
	return ps.Records, nil
}

// SaveStore writes records to path atomically and durably (a temporary file synced, renamed over path, and the
// directory synced), creating the directory if needed. The temporary files of path that a crash left behind (named
// after it, and over a minute old) are removed; other files of the directory, peer stores of other nodes and their
// saves under way included, are left alone.
func SaveStore(path string, records []*messages.NodeRecord, now time.Time) error {
	b, err := proto.Marshal(&messages.PeerStore{Records: records, SavedAt: now.Unix()})
	if err != nil {
		return fmt.Errorf("routing: encode peer store: %w", err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("routing: save peer store: %w", err)
	}
	return nil
}

// writeFileAtomic writes b to path atomically and durably (a temporary file synced, renamed over path, and the
// directory synced), creating the directory (0700) if needed; the file is 0600. The temporary files of path that a
// crash left behind (named after it, and over a minute old) are removed; other files of the directory are left
// alone.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("directory: %w", err)
	}
	prefix := "." + filepath.Base(path) + "-"
	removeStaleTemps(dir, prefix)
	tmp, err := os.CreateTemp(dir, prefix+"*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil { // the data on disk before the rename makes it the file
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable where the system allows it (best effort: not every one syncs directories).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// staleTempAge is how old a temporary file of SaveStore must be to be taken for a crash's leftover: a save takes
// milliseconds.
const staleTempAge = time.Minute

// removeStaleTemps removes the files of dir named prefix*.tmp that are older than staleTempAge.
func removeStaleTemps(dir, prefix string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".tmp") {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTempAge {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
}
