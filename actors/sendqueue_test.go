package actors

import (
	"errors"
	"slices"
	"testing"
)

// startedQueue returns a queue of a started connection whose writer is idle, and the count of writers started.
func startedQueue(limit int) (*sendQueue, *int) {
	starts := new(int)
	q := newSendQueue(limit, func() { *starts++ })
	if _, res := q.take(batch{}); res != queueIdle {
		panic("a new queue must be empty")
	}
	return q, starts
}

func TestSendQueueBoundsBytes(t *testing.T) {
	q, _ := startedQueue(100 + 2*queueItemOverhead) // two items of 100 bytes in all
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
	got, _ := q.take(batch{})
	if len(got.items) != 3 || len(got.lent) != 3 || q.len() != 110 {
		t.Fatalf("take returned %d items (%d lent buffers), %d bytes counted while they are written", len(got.items), len(got.lent), q.len())
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
	if b, res := q.take(batch{}); res != batchTaken || len(b.items) != 1 {
		t.Fatalf("the first writer took %d items (%v), want the one queued before start", len(b.items), res)
	}
	if _, res := q.take(batch{}); res != queueIdle {
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
	if _, res := q.take(batch{}); res != queueStopping {
		t.Fatalf("take after stop: %v, want queueStopping", res)
	}
	idle, idleStarts := startedQueue(1000)
	idle.stop()
	if *idleStarts != 1 {
		t.Fatalf("stop on an idle queue started %d writers, want 1 to finish the connection", *idleStarts)
	}
}

func TestSendQueueCountsTheBatchBeingWritten(t *testing.T) {
	q, _ := startedQueue(1000)
	for range 3 {
		if err := q.push(make([]byte, 10), false); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := q.take(batch{})
	if len(b.items) != 3 || q.len() != 30 {
		t.Fatalf("took %d items, len %d while they are written: want 3 and 30", len(b.items), q.len())
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

func TestSendQueueKeepsEachLentBufferWithItsItem(t *testing.T) {
	q, _ := startedQueue(1000)
	lent := func(n byte) ([]byte, *[]byte) { b := []byte{n}; return b, &b }
	b1, buf1 := lent(1)
	b3, buf3 := lent(3)
	for _, p := range []struct {
		b   []byte
		buf *[]byte
	}{{b1, buf1}, {[]byte{2}, nil}, {b3, buf3}} {
		if err := q.pushLent(p.b, p.buf, false); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := q.take(batch{})
	if len(b.items) != 3 || !slices.Equal(b.lent, []*[]byte{buf1, nil, buf3}) {
		t.Fatalf("took %d items with lent buffers %v, want each item's own (1, none, 3)", len(b.items), b.lent)
	}
	// A batch put back (a graceful close) goes before what was queued meanwhile, each buffer still with its item.
	b4, buf4 := lent(4)
	if err := q.pushLent(b4, buf4, false); err != nil {
		t.Fatal(err)
	}
	q.requeue(b)
	again, _ := q.take(batch{})
	if len(again.items) != 4 || again.items[3][0] != 4 || !slices.Equal(again.lent, []*[]byte{buf1, nil, buf3, buf4}) {
		t.Fatalf("after requeue took %v with %v, want items 1-4 with their buffers", again.items, again.lent)
	}
	if err := q.pushLent(b4, buf4, false); err != nil {
		t.Fatal(err)
	}
	if left := q.close(); len(left) != 1 || q.lent != nil {
		t.Fatalf("close left %d items and lent buffers %v, want the 1 item and no buffers kept", len(left), q.lent)
	}
}

// Each item is charged queueItemOverhead beyond its bytes: a peer that sent pings and read slowly made the node
// queue millions of 2-byte pongs, which held hundreds of MB under a limit that counted 2 bytes for each.
func TestSendQueueChargesEachItem(t *testing.T) {
	const limit = 16 << 10
	q, _ := startedQueue(limit)
	n := 0
	for q.push([]byte{1, 2}, false) == nil {
		n++
	}
	// Each item must cost what it takes in memory (tens of bytes), not its 2 bytes.
	if n == 0 || n > limit/32 {
		t.Fatalf("the queue took %d items of 2 bytes under a limit of %d, want 1 to %d", n, limit, limit/32)
	}
}

// The batch the writer took counts against the limit while it is written (up to WriteTimeout to a peer that reads
// slowly): it used to be ignored, and a connection could hold twice SendQueueBytes.
func TestSendQueueBoundCountsTheBatchBeingWritten(t *testing.T) {
	q, _ := startedQueue(100 + 2*queueItemOverhead) // two items of 100 bytes in all
	if err := q.push(make([]byte, 60), false); err != nil {
		t.Fatal(err)
	}
	if _, res := q.take(batch{}); res != batchTaken {
		t.Fatal("no batch")
	}
	if err := q.push(make([]byte, 41), false); !errors.Is(err, errQueueFull) {
		t.Fatalf("push of 41 bytes beside a 60-byte batch in flight, limit 100: %v, want errQueueFull", err)
	}
	if err := q.push(make([]byte, 40), false); err != nil {
		t.Fatalf("push of 40 bytes beside a 60-byte batch in flight, limit 100: %v", err)
	}
	if q.len() != 100 {
		t.Fatalf("len %d, want 100", q.len())
	}
	q.written()
	if err := q.push(make([]byte, 60), false); err != nil {
		t.Fatalf("push once the batch was written: %v", err)
	}
	// A queue with nothing queued but a batch in flight is not empty: an oversized item waits for the batch.
	q2, _ := startedQueue(10)
	if err := q2.push(make([]byte, 5), false); err != nil {
		t.Fatal(err)
	}
	q2.take(batch{})
	if err := q2.push(make([]byte, 50), false); !errors.Is(err, errQueueFull) {
		t.Fatalf("oversized push beside a batch in flight: %v, want errQueueFull", err)
	}
	q2.written()
	if err := q2.push(make([]byte, 50), false); err != nil {
		t.Fatalf("oversized push into an idle queue: %v", err)
	}
}

// The application's messages go while the queue holds less than half its limit and has room for them (pushApp):
// otherwise they are refused with a channel that a written batch or the queue's close closes; gossip and control
// keep the rest.
func TestSendQueueLeavesHalfToGossipAndControl(t *testing.T) {
	q, _ := startedQueue(200 + 2*queueItemOverhead) // half: 164
	if _, err := q.pushApp(make([]byte, 110)); err != nil {
		t.Fatalf("an application message into an empty queue: %v", err)
	}
	room, err := q.pushApp(make([]byte, 10))
	if !errors.Is(err, errQueueBusy) || room == nil {
		t.Fatalf("an application message with the queue over half: %v, want errQueueBusy and a channel", err)
	}
	if err := q.push(make([]byte, 20), false); err != nil {
		t.Fatalf("gossip within the rest: %v", err)
	}
	q.take(batch{})
	select {
	case <-room:
		t.Fatal("room signalled before the batch was written")
	default:
	}
	q.written()
	select {
	case <-room:
	default:
		t.Fatal("room not signalled once the batch was written")
	}
	if err := q.push(make([]byte, 10), true); err != nil { // a pong: the queue is under half
		t.Fatal(err)
	}
	if _, err := q.pushApp(make([]byte, 240)); !errors.Is(err, errQueueBusy) {
		t.Fatalf("an application message under half the queue without room for it: %v, want errQueueBusy", err)
	}
	if _, err := q.pushApp(make([]byte, 150)); err != nil {
		t.Fatalf("an application message under half the queue with room for it: %v", err)
	}
	room, err = q.pushApp(make([]byte, 1))
	if !errors.Is(err, errQueueBusy) {
		t.Fatalf("over half again: %v", err)
	}
	q.close()
	select {
	case <-room:
	default:
		t.Fatal("room not signalled by close")
	}
	if _, err := q.pushApp([]byte{1}); !errors.Is(err, errQueueClosed) {
		t.Fatalf("an application message after close: %v", err)
	}
}

// An application message goes only while the queue holds less than half its limit: at exactly half it waits.
func TestSendQueueAtExactlyHalfIsBusyForTheApplication(t *testing.T) {
	q, _ := startedQueue(200 + 2*queueItemOverhead)          // half: 164
	if err := q.push(make([]byte, 100), false); err != nil { // charged 100 + queueItemOverhead: half exactly
		t.Fatal(err)
	}
	if _, err := q.pushApp(make([]byte, 1)); !errors.Is(err, errQueueBusy) {
		t.Fatalf("an application message with the queue at half its limit: %v, want errQueueBusy", err)
	}
	q.close()
}
