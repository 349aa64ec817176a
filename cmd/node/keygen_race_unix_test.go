//go:build unix

package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/actormesh/actormesh/session"
)

// A keygen --force that replaces the key between a starting node's read of it and its lock of the key file leaves
// the node running as the key the locked file holds, the one keygen printed: until stop 58 the node ran as the old
// identity while holding the new key's lock, and came back as another node at its next start.
func TestAKeyReplacedWhileTheNodeStartsIsTheNodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := keygen(io.Discard, path, false); err != nil {
		t.Fatal(err)
	}
	var printed bytes.Buffer
	id, created, release, err := lockedKey(path, func() {
		if err := keygen(&printed, path, true); err != nil {
			t.Errorf("keygen --force before the node's lock: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	onDisk, err := session.LoadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if id.NodeID() != onDisk.NodeID() || created || strings.TrimSpace(printed.String()) != onDisk.NodeID().String() {
		t.Fatalf("the node runs as %s (created %v), its locked key file holds %s, keygen printed %q", id.NodeID().Short(),
			created, onDisk.NodeID().Short(), strings.TrimSpace(printed.String()))
	}
	// And the lock is held: a second keygen --force is refused.
	if err := keygen(io.Discard, path, true); err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Fatalf("keygen --force on the running node's key: %v, want a refusal", err)
	}
}
