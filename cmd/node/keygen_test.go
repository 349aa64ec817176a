package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
)

// A key file that keygen creates appears whole: a reader never finds it empty or partial (keygen made an empty
// placeholder first, which a node starting meanwhile refused as a bad key file, and which a crash left behind).
func TestKeygenNeverShowsAnEmptyKeyFile(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		path := filepath.Join(dir, strconv.Itoa(i)+".key")
		var done atomic.Bool
		seen := make(chan string, 1)
		go func() {
			bad := ""
			for !done.Load() {
				// A whole key file is one line.
				if data, err := os.ReadFile(path); err == nil && !bytes.HasSuffix(data, []byte("\n")) && bad == "" {
					bad = strconv.Quote(string(data))
				}
			}
			seen <- bad
		}()
		err := keygen(io.Discard, path, false)
		done.Store(true)
		if bad := <-seen; bad != "" {
			t.Fatalf("round %d: a reader found the key file %s", i, bad)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
