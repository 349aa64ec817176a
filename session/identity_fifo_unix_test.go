//go:build unix

package session

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO with a writer holding it open, a valid key written into it, is refused at once: LoadIdentity reads only a
// regular file (read to its end, the FIFO would block until the writer went).
func TestLoadIdentityRefusesAFIFOWithAWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(path, os.O_RDWR, 0) // read-write: the open does not wait for a reader
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(keyFilePrefix + strings.Repeat("ab", 32) + "\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadIdentity(path); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrBadKeyFile) || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("LoadIdentity of a FIFO: %v, want ErrBadKeyFile for a file that is not regular", err)
		}
	case <-time.After(10 * time.Second):
		w.Close() // the reader sees the end, so that the goroutine ends
		<-done
		t.Fatal("LoadIdentity of a FIFO with a writer blocked")
	}
}
