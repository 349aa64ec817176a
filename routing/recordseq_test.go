package routing

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNextRecordSeqStaysAboveTheLastOneKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "record.seq")
	now := time.Unix(1_800_000_000, 0)
	readBack := func() uint64 {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	// No file: the clock's number, kept.
	seq, err := NextRecordSeq(path, now)
	if err != nil || seq != uint64(now.UnixNano()) || readBack() != seq {
		t.Fatalf("first: %d, %v (file %d); want the clock's %d", seq, err, readBack(), now.UnixNano())
	}
	// The clock went back an hour (it was ahead in the last run): one more than the last one.
	back := now.Add(-time.Hour)
	if seq2, err := NextRecordSeq(path, back); err != nil || seq2 != seq+1 || readBack() != seq2 {
		t.Fatalf("after the clock went back: %d, %v; want %d", seq2, err, seq+1)
	}
	// Twice at the same instant: still increasing.
	if seq3, err := NextRecordSeq(path, back); err != nil || seq3 != seq+2 {
		t.Fatalf("again: %d, %v; want %d", seq3, err, seq+2)
	}
	// The clock ahead of the file again: the clock's.
	later := now.Add(time.Hour)
	if seq4, err := NextRecordSeq(path, later); err != nil || seq4 != uint64(later.UnixNano()) {
		t.Fatalf("later: %d, %v; want %d", seq4, err, later.UnixNano())
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the file: %v, %v; want mode 0600", st, err)
	}

	// A file at the largest number stays there rather than wrapping to 0.
	if err := os.WriteFile(path, []byte(strconv.FormatUint(math.MaxUint64, 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if seq, err := NextRecordSeq(path, now); err != nil || seq != math.MaxUint64 {
		t.Fatalf("at the largest number: %d, %v", seq, err)
	}
}

func TestNextRecordSeqOverwritesABadFileAndLeavesANonRegularOne(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)

	garbage := filepath.Join(dir, "garbage.seq")
	if err := os.WriteFile(garbage, []byte("not a number\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seq, err := NextRecordSeq(garbage, now)
	if err == nil || seq != uint64(now.UnixNano()) {
		t.Fatalf("a file holding no number: %d, %v; want the clock's number and an error", seq, err)
	}
	if seq2, err := NextRecordSeq(garbage, now); err != nil || seq2 != seq+1 {
		t.Fatalf("after it was overwritten: %d, %v; want %d and no error", seq2, err, seq+1)
	}

	fifo := filepath.Join(dir, "fifo.seq")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		seq, err := NextRecordSeq(fifo, now)
		if err == nil || seq != uint64(now.UnixNano()) {
			t.Errorf("a FIFO: %d, %v; want the clock's number and an error", seq, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("NextRecordSeq blocked on a FIFO")
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was replaced: %v, %v", st, err)
	}
}
