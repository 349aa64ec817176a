package session

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// noLinks is os.Link on a filesystem without hard links, failing as such filesystems do (vfat's EPERM, FUSE and
// SMB mounts' ENOTSUP, ENOSYS or EXDEV).
func noLinks(errno syscall.Errno) func(oldname, newname string) error {
	return func(oldname, newname string) error {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: errno}
	}
}

// onlyEntry fails the test unless the key file is the only entry of its directory: no temporary key is left.
func onlyEntry(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		t.Fatalf("the key's directory holds %v, want only %s", entries, filepath.Base(path))
	}
}

// SaveNew publishes a complete key where nothing is, and refuses to replace one, leaving it as it was.
func TestSaveNewRefusesToReplaceAKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := testIdentity(t, 1).SaveNew(path); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := testIdentity(t, 2).SaveNew(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("SaveNew over a key: %v, want fs.ErrExist", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the refused SaveNew changed the key file")
	}
	onlyEntry(t, path)
	if id, err := LoadIdentity(path); err != nil || id.NodeID() != testIdentity(t, 1).NodeID() {
		t.Fatalf("LoadIdentity: %v, %v; want the first identity", id, err)
	}
}

// On a filesystem without hard links, a new key file is still created, exclusively, whole, with mode 0600 and no
// temporary file left, and LoadOrCreateIdentity creates one there or loads the one there.
func TestSaveNewWithoutHardLinks(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.ENOTSUP, syscall.EOPNOTSUPP, syscall.ENOSYS, syscall.EXDEV} {
		t.Run(errno.Error(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "node.key")
			if err := testIdentity(t, 1).save(path, noLinks(errno)); err != nil {
				t.Fatalf("SaveNew without hard links: %v", err)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := st.Mode().Perm(); perm != 0o600 && runtime.GOOS != "windows" {
				t.Fatalf("mode %04o, want 0600", perm)
			}
			onlyEntry(t, path)
			if id, err := LoadIdentity(path); err != nil || id.NodeID() != testIdentity(t, 1).NodeID() {
				t.Fatalf("LoadIdentity: %v, %v; want the saved identity", id, err)
			}
			if err := testIdentity(t, 2).save(path, noLinks(errno)); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("SaveNew over a key without hard links: %v, want fs.ErrExist", err)
			}
			if id, err := LoadIdentity(path); err != nil || id.NodeID() != testIdentity(t, 1).NodeID() {
				t.Fatalf("after the refused save: %v, %v; want the first identity", id, err)
			}
			onlyEntry(t, path)

			fresh := filepath.Join(t.TempDir(), "sub", "node.key")
			id, created, err := loadOrCreateIdentity(fresh, noLinks(errno))
			if err != nil || !created {
				t.Fatalf("LoadOrCreateIdentity without hard links: created %v, %v", created, err)
			}
			again, created, err := loadOrCreateIdentity(fresh, noLinks(errno))
			if err != nil || created || again.NodeID() != id.NodeID() {
				t.Fatalf("LoadOrCreateIdentity again: %v, created %v, %v; want %v loaded", again, created, err, id)
			}
		})
	}
}

// A link failing for another reason than a filesystem without hard links fails the save: nothing is created at the
// key's path and the temporary key is removed.
func TestSaveNewFailsOnOtherLinkErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	err := testIdentity(t, 1).save(path, noLinks(syscall.EIO))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("save with a link failing with EIO: %v, want EIO", err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 0 {
		t.Fatalf("the key's directory holds %v (%v), want nothing", entries, err)
	}
}

// Callers of LoadOrCreateIdentity racing on a filesystem without hard links all load the key one of them created:
// SaveNew's claim of the path, an empty file until the key is renamed over it, failed the callers that read it
// meanwhile with ErrBadKeyFile (21 calls in 2000 of an audit's race).
func TestLoadOrCreateIdentityWithoutHardLinksWaitsForTheClaimToFill(t *testing.T) {
	const rounds, callers = 125, 16
	failed := 0
	for round := range rounds {
		path := filepath.Join(t.TempDir(), "node.key")
		ids := make([]NodeID, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				id, _, err := loadOrCreateIdentity(path, noLinks(syscall.EPERM))
				if errs[i] = err; err == nil {
					ids[i] = id.NodeID()
				}
			}()
		}
		close(start)
		wg.Wait()
		onDisk, err := LoadIdentity(path)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i, err := range errs {
			switch {
			case err != nil:
				if failed++; failed == 1 {
					t.Errorf("round %d: caller %d: %v", round, i, err)
				}
			case ids[i] != onDisk.NodeID():
				t.Fatalf("round %d: caller %d runs with %s, the key file holds %s", round, i, ids[i].Short(), onDisk.NodeID().Short())
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d calls of %d failed", failed, rounds*callers)
	}
}

// A key file that stays empty (a SaveNew without hard links that crashed between its claim and its rename) fails
// LoadIdentity and LoadOrCreateIdentity within the wait's bound, with ErrEmptyKeyFile naming the path and telling
// the operator to delete it; LoadOrCreateIdentity leaves it in place.
func TestAKeyFileThatStaysEmptyFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, load := range map[string]func() error{
		"LoadIdentity":         func() error { _, err := LoadIdentity(path); return err },
		"LoadOrCreateIdentity": func() error { _, _, err := LoadOrCreateIdentity(path); return err },
	} {
		began := time.Now()
		err := load()
		took := time.Since(began)
		if !errors.Is(err, ErrEmptyKeyFile) || !errors.Is(err, ErrBadKeyFile) {
			t.Fatalf("%s of an empty file: %v, want ErrEmptyKeyFile (an ErrBadKeyFile)", name, err)
		}
		for _, want := range []string{path, "empty", "delete it"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %q does not say %q", name, err, want)
			}
		}
		if took < emptyKeyFileWait || took > emptyKeyFileWait+5*time.Second {
			t.Errorf("%s failed after %v, want after its wait of %v and soon after", name, took, emptyKeyFileWait)
		}
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("the empty key file: %v, %v; want it left as it was", st, err)
	}
}
