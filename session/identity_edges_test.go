package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A Save that fails at its last step (the path is a directory) removes its temporary file, a private key of its
// own.
func TestAFailedSaveRemovesItsTemporaryKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := testIdentity(t, 1).Save(path); err == nil {
		t.Fatal("Save over a directory succeeded")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d entries in the directory after the failed save, want only the directory in the key's place", len(entries))
	}
}

// A temporary key file is stale from exactly staleTempAge on; only regular files with the key's temporary prefix are
// removed.
func TestRemoveStaleTempsBounds(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "node.key")
	stale, tempDir := filepath.Join(dir, tempPrefix("node.key")+"1"), filepath.Join(dir, tempPrefix("node.key")+"dir")
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tempDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(stale)
	if err != nil {
		t.Fatal(err)
	}
	old := st.ModTime().Add(-time.Hour)
	if err := os.Chtimes(tempDir, old, old); err != nil {
		t.Fatal(err)
	}
	removeStaleTemps(path, st.ModTime().Add(staleTempAge-time.Nanosecond))
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("a temporary key just under staleTempAge old was removed: %v", err)
	}
	removeStaleTemps(path, st.ModTime().Add(staleTempAge))
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a temporary key staleTempAge old is still there: %v", err)
	}
	if _, err := os.Stat(tempDir); err != nil {
		t.Fatalf("a directory named like a temporary key was removed: %v", err)
	}
}

// Sign on an identity that holds no key panics with a message that says so.
func TestSignWithoutAKeyPanicsClearly(t *testing.T) {
	defer func() {
		if p, _ := recover().(string); !strings.Contains(p, "holds no key") {
			t.Fatalf("Sign on the zero Identity: panic %q, want one saying it holds no key", p)
		}
	}()
	(&Identity{}).Sign([]byte("m"))
}

// A seed longer than 32 bytes is a bad key file, as a shorter one is.
func TestLoadIdentityRefusesALongSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(path, []byte(keyFilePrefix+strings.Repeat("ab", 33)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(path); !errors.Is(err, ErrBadKeyFile) {
		t.Fatalf("a 33-byte seed: %v, want ErrBadKeyFile", err)
	}
}
