//go:build unix

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keygen --force refuses to replace the key of a running node, whether the node found it in its --data-dir or was
// given it with --key, and leaves the key as it was; once the node stopped, the key is replaced.
func TestKeygenForceRefusesTheKeyOfARunningNode(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	own := filepath.Join(dir, "own.key")
	keygenAt(t, own)
	for _, tc := range []struct {
		name, key, refusal string
		args               []string
	}{
		{"in its data directory", filepath.Join(state, dataDirKeyFile), "data directory", []string{"--data-dir", state}},
		{"given with --key", own, "in use by another node process", []string{"--key", own}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startInProcess(t, append([]string{"--listen", "127.0.0.1:0", "--api", "off"}, tc.args...)...)
			running := r.listening(t).ID
			before, err := os.ReadFile(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			code, out, errOut := call(t, "keygen", "--key", tc.key, "--force")
			if code != exitError || out != "" || !strings.Contains(errOut, "refusing to replace") ||
				!strings.Contains(errOut, tc.refusal) || !strings.Contains(errOut, "stop that node first") {
				t.Fatalf("keygen --force on a running node's key: exit %d, stdout %q, stderr %q; want %d, a refusal naming %q",
					code, out, errOut, exitError, tc.refusal)
			}
			if after, _ := os.ReadFile(tc.key); !bytes.Equal(before, after) {
				t.Fatal("the refused keygen changed the running node's key")
			}
			if code := r.stop(t); code != exitOK {
				t.Fatalf("run exited %d: %s", code, &r.stderr)
			}
			code, out, errOut = call(t, "keygen", "--key", tc.key, "--force")
			if code != exitOK || strings.TrimSpace(out) == running.String() {
				t.Fatalf("keygen --force once the node stopped: exit %d, stdout %q, stderr %q; want a new identity", code, out, errOut)
			}
		})
	}
}
