package session

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testIdentity returns the deterministic identity number n.
func testIdentity(tb testing.TB, n byte) *Identity {
	tb.Helper()
	id, err := IdentityFromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func TestIdentitySaveLoad(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := id.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %04o, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), keyFilePrefix) || !strings.HasSuffix(string(data), "\n") ||
		len(data) != len(keyFilePrefix)+64+1 {
		t.Fatalf("key file content = %q", data)
	}
	loaded, err := LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.NodeID() != id.NodeID() {
		t.Fatalf("loaded %v, saved %v", loaded.NodeID(), id.NodeID())
	}
	msg := []byte("m")
	if !id.NodeID().Verify(msg, loaded.Sign(msg)) {
		t.Fatal("loaded identity signs differently")
	}
	// Save replaces an existing file and leaves no temporary files behind.
	other := testIdentity(t, 9)
	if err := other.Save(path); err != nil {
		t.Fatal(err)
	}
	if loaded, err = LoadIdentity(path); err != nil || loaded.NodeID() != other.NodeID() {
		t.Fatalf("after overwrite: %v, %v", loaded, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key file", len(entries))
	}
}

func TestIdentityFromSeed(t *testing.T) {
	first, again := testIdentity(t, 5), testIdentity(t, 5)
	if first.NodeID() != again.NodeID() {
		t.Fatal("same seed, different identities")
	}
	if testIdentity(t, 5).NodeID() == testIdentity(t, 6).NodeID() {
		t.Fatal("different seeds, same identity")
	}
	if _, err := IdentityFromSeed(make([]byte, 31)); err == nil {
		t.Fatal("31-byte seed accepted")
	}
}

func TestLoadIdentityBadContent(t *testing.T) {
	dir := t.TempDir()
	hex64 := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, content, wantMsg string }{
		{"empty", "", "empty"},
		{"no prefix", hex64 + "\n", "prefix"},
		{"short seed", keyFilePrefix + hex64[:62] + "\n", "64 hex characters"},
		{"not hex", keyFilePrefix + strings.Repeat("zz", 32) + "\n", "not hex"},
		{"two lines", keyFilePrefix + hex64 + "\nmore\n", "more than one line"},
		{"huge", strings.Repeat("x", 5000), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadIdentity(path)
			if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), tc.wantMsg) ||
				!strings.Contains(err.Error(), path) {
				t.Fatalf("error = %v, want ErrBadKeyFile naming the path and %q", err, tc.wantMsg)
			}
		})
	}
	// A CRLF line ending is tolerated.
	path := filepath.Join(dir, "crlf")
	if err := os.WriteFile(path, []byte(keyFilePrefix+hex64+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); err != nil {
		t.Fatalf("CRLF key file: %v", err)
	}
}

func TestLoadIdentityPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := testIdentity(t, 1).Save(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadIdentity(path)
		if !errors.Is(err, ErrKeyFilePermissions) || !strings.Contains(err.Error(), path) {
			t.Fatalf("mode %04o: error = %v, want ErrKeyFilePermissions naming the path", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); err != nil {
		t.Fatalf("mode 0400: %v", err)
	}
}

func TestLoadOrCreateIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "node.key")
	if _, err := LoadIdentity(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: error = %v, want fs.ErrNotExist", err)
	}
	id, created, err := LoadOrCreateIdentity(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	st, err := os.Stat(filepath.Dir(path))
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("parent dir: %v, %v; want mode 0700", st, err)
	}
	again, created, err := LoadOrCreateIdentity(path)
	if err != nil || created || again.NodeID() != id.NodeID() {
		t.Fatalf("second call: id %v (want %v) created=%v err=%v", again.NodeID(), id.NodeID(), created, err)
	}
	// A broken file is reported, not replaced.
	if err := os.WriteFile(path, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(path); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("broken file: error = %v, want ErrBadKeyFile", err)
	}
}

// Concurrent LoadOrCreateIdentity calls on one path agree on one identity, the one the file holds, and one of them
// created it: each used to generate a key and rename it over the file, and all but the last ran with a key lost.
func TestLoadOrCreateIdentityConcurrentCallersAgree(t *testing.T) {
	for round := range 10 {
		path := filepath.Join(t.TempDir(), "node.key")
		const callers = 8
		ids := make([]NodeID, callers)
		created := make([]bool, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id, c, err := LoadOrCreateIdentity(path)
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
					return
				}
				ids[i], created[i] = id.NodeID(), c
			}()
		}
		wg.Wait()
		onDisk, err := LoadIdentity(path)
		if err != nil {
			t.Fatal(err)
		}
		makers := 0
		for i := range callers {
			if ids[i] != onDisk.NodeID() {
				t.Fatalf("round %d: caller %d runs with %s, the key file holds %s", round, i, ids[i].Short(), onDisk.NodeID().Short())
			}
			if created[i] {
				makers++
			}
		}
		if makers != 1 {
			t.Fatalf("round %d: %d callers say they created the identity, want 1", round, makers)
		}
	}
}

// A key path that is not a regular file is refused at once: opening a FIFO blocked until a writer came (node run
// and node id hung for good, the first SIGTERM caught and unanswered).
func TestLoadIdentityRefusesAFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadIdentity(path); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBadKeyFile) {
			t.Fatalf("LoadIdentity of a FIFO: %v, want ErrBadKeyFile", err)
		}
	case <-time.After(10 * time.Second):
		w, err := os.OpenFile(path, os.O_WRONLY, 0) // unblocks the open, so that the test's goroutine ends
		if err == nil {
			_ = w.Close()
		}
		t.Fatal("LoadIdentity of a FIFO blocked")
	}
}

// A FIFO put in the key's place between a check of the path and its open cannot block LoadIdentity either: the file
// is opened without blocking and checked once open (the check by name before a plain open blocked 3 runs in 3,
// after 123 to 7 784 calls, while another goroutine swapped the two).
func TestLoadIdentityRefusesAFIFOSwappedIn(t *testing.T) {
	dir := t.TempDir()
	path, key, fifo := filepath.Join(dir, "node.key"), filepath.Join(dir, "real.key"), filepath.Join(dir, "fifo")
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := id.Save(key); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	stop, swapped := make(chan struct{}), make(chan struct{})
	go func() { // the path is the key, then nothing, then the FIFO, then nothing, ...
		defer close(swapped)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.Rename(key, path)
			_ = os.Rename(path, key)
			_ = os.Rename(fifo, path)
			_ = os.Rename(path, fifo)
		}
	}()
	done := make(chan int, 1)
	go func() {
		loaded := 0
		for range 20000 {
			if _, err := LoadIdentity(path); err == nil {
				loaded++
			}
		}
		done <- loaded
	}()
	select {
	case <-done:
		close(stop)
		<-swapped
	case <-time.After(60 * time.Second):
		close(stop)
		<-swapped
		for _, p := range []string{path, fifo} { // a writer unblocks the open, so that the goroutine ends
			if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				_ = w.Close()
			}
		}
		t.Fatal("LoadIdentity blocked on a FIFO swapped in for the key")
	}
}

// An identity never prints its private key, whatever the verb: the struct printed its 64 private bytes (an
// audit's finding). The zero Identity holds no key: NodeID is the zero NodeID and Save fails, where both panicked.
func TestAnIdentityHidesItsKeyAndTheZeroOneFailsCleanly(t *testing.T) {
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	seed := hex.EncodeToString(id.priv.Seed())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q"} {
		out := fmt.Sprintf(verb, id)
		if strings.Contains(strings.ToLower(out), seed[:16]) || strings.Contains(out, string(id.priv.Seed()[:8])) {
			t.Errorf("%s printed the private key: %s", verb, out)
		}
		if !strings.Contains(out, id.NodeID().String()) {
			t.Errorf("%s: %q does not name the identity's NodeID", verb, out)
		}
	}
	zero := &Identity{}
	if !zero.NodeID().IsZero() {
		t.Error("the zero Identity's NodeID is not the zero NodeID")
	}
	if err := zero.Save(filepath.Join(t.TempDir(), "key")); err == nil {
		t.Error("Save of the zero Identity succeeded")
	}
	if s := fmt.Sprint(zero); s != "Identity(none)" {
		t.Errorf("the zero Identity prints %q", s)
	}
}

// A save, and a load at a node's start, remove the temporary key files an earlier save left behind when its process
// stopped before linking them (each a private key of its own in the node's directory), but not one of another save
// under way, seconds old.
func TestSaveRemovesTheTemporaryKeysOfACrashedSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	stale, fresh, other := filepath.Join(dir, ".node.key.tmp-123"), filepath.Join(dir, ".node.key.tmp-456"),
		filepath.Join(dir, ".other.key.tmp-789")
	for _, f := range []string{stale, fresh, other} {
		if err := os.WriteFile(f, []byte(keyFilePrefix+"00\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTempAge)
	for _, f := range []string{stale, other} {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := LoadOrCreateIdentity(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale temporary key is still there (%v)", err)
	}
	for _, f := range []string{fresh, other} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s, not a stale temporary of this key, was removed: %v", filepath.Base(f), err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 { // the key, and the two left alone: the save's own temporary file is gone too
		t.Errorf("%d files in the directory, want 3", len(entries))
	}
	// The key exists now: a load at the next start removes what a crash left meanwhile.
	if err := os.Chtimes(fresh, old, old); err != nil {
		t.Fatal(err)
	}
	if _, created, err := LoadOrCreateIdentity(path); err != nil || created {
		t.Fatalf("load: created %v, %v", created, err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the load left the stale temporary key (%v)", err)
	}
}
