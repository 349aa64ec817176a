package actors

import (
	"errors"
	"testing"
)

// startedQueue returns a queue of a started connection whose writer is idle, and the count of writers started.
func startedQueue(limit int) (*sendQueue, *int) {
	starts := new(int)
	q := newSendQueue(limit, func() { *starts++ })
	if _, res := q.take(nil); res != queueIdle {
		panic("a new queue must be empty")
	}
	return q, starts
}

func TestSendQueueBoundsBytes(t *testing.T) {
	q, _ := startedQueue(100)
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
	got, _ := q.take(nil)
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
	q, starts := startedQueue(10)
	if err := q.push(make([]byte, 50), false); err != nil {
		t.Fatalf("an empty queue must take one item bigger than its limit: %v", err)
	}
	if *starts != 1 {
		t.Fatalf("push started %d writers, want 1", *starts)
	}
}

func TestSendQueueStartsAWriterOnlyWhenNoneRuns(t *testing.T) {
	starts := 0
	q := newSendQueue(1000, func() { starts++ })
	if err := q.push([]byte{1}, false); err != nil || starts != 0 {
		t.Fatalf("push before the connection started: err %v, %d writers started, want none", err, starts)
	}
	if batch, res := q.take(nil); res != batchTaken || len(batch) != 1 {
		t.Fatalf("the first writer took %d items (%v), want the one queued before start", len(batch), res)
	}
	if _, res := q.take(nil); res != queueIdle {
		t.Fatalf("take on an empty queue: %v, want queueIdle", res)
	}
	for range 3 {
		if err := q.push([]byte{2}, false); err != nil {
			t.Fatal(err)
		}
	}
	if starts != 1 {
		t.Fatalf("three pushes to an idle queue started %d writers, want 1", starts)
	}
	q.stop()
	if starts != 1 {
		t.Fatal("stop started a writer while one runs")
	}
	if _, res := q.take(nil); res != queueStopping {
		t.Fatalf("take after stop: %v, want queueStopping", res)
	}
	idle, idleStarts := startedQueue(1000)
	idle.stop()
	if *idleStarts != 1 {
		t.Fatalf("stop on an idle queue started %d writers, want 1 to finish the connection", *idleStarts)
	}
}

func TestSendQueueCountsTheBatchBeingWritten(t *testing.T) {
	q, _ := startedQueue(100)
	for range 3 {
		if err := q.push(make([]byte, 10), false); err != nil {
			t.Fatal(err)
		}
	}
	batch, _ := q.take(nil)
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
