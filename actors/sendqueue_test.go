package actors

import (
	"errors"
	"testing"
)

func TestSendQueueBoundsBytes(t *testing.T) {
	q := newSendQueue(100)
	if err := q.push(make([]byte, 60), false); err != nil {
		t.Fatal(err)
	}
	if err := q.push(make([]byte, 40), false); err != nil {
		t.Fatal(err)
	}
	if err := q.push(make([]byte, 1), false); !errors.Is(err, errQueueFull) {
		t.Fatalf("push past limit: %v, want errQueueFull", err)
	}
	if err := q.push(make([]byte, 10), true); err != nil {
		t.Fatalf("control message within allowance refused: %v", err)
	}
	got := q.take(nil)
	if len(got) != 3 || q.len() != 110 {
		t.Fatalf("take returned %d items, %d bytes counted while they are written", len(got), q.len())
	}
	if q.written(); q.len() != 0 {
		t.Fatalf("%d bytes left after the batch was written", q.len())
	}
	if err := q.push(make([]byte, 100), false); err != nil {
		t.Fatalf("push after take: %v", err)
	}
	if left := q.close(); len(left) != 1 {
		t.Fatalf("close returned %d items", len(left))
	}
	if err := q.push([]byte{1}, true); !errors.Is(err, errQueueClosed) {
		t.Fatalf("push after close: %v", err)
	}
}

func TestSendQueueAcceptsOneOversizedItemWhenEmpty(t *testing.T) {
	q := newSendQueue(10)
	if err := q.push(make([]byte, 50), false); err != nil {
		t.Fatalf("an empty queue must take one item bigger than its limit: %v", err)
	}
	select {
	case <-q.notify:
	default:
		t.Fatal("push did not signal the writer")
	}
}

func TestSendQueueCountsTheBatchBeingWritten(t *testing.T) {
	q := newSendQueue(100)
	for range 3 {
		if err := q.push(make([]byte, 10), false); err != nil {
			t.Fatal(err)
		}
	}
	batch := q.take(nil)
	if len(batch) != 3 || q.len() != 30 {
		t.Fatalf("took %d items, len %d while they are written: want 3 and 30", len(batch), q.len())
	}
	if err := q.push(make([]byte, 5), false); err != nil {
		t.Fatal(err)
	}
	if q.len() != 35 {
		t.Fatalf("len %d, want 35", q.len())
	}
	q.written()
	if q.len() != 5 {
		t.Fatalf("len %d after the batch was written, want 5", q.len())
	}
}
