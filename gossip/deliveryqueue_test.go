package gossip

import (
	"testing"
)

func TestDeliveryQueueIsBoundedAndKeepsOrder(t *testing.T) {
	q := newDeliveryQueue(3, 1<<20)
	ds := make([]*Delivery, 4)
	for i := range ds {
		ds[i] = &Delivery{Topic: "t"}
	}
	for i, d := range ds {
		if got, want := q.push(d), i < 3; got != want {
			t.Fatalf("push %d = %v, want %v", i, got, want)
		}
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("no ready token after a push")
	}
	batch := q.take()
	if len(batch) != 3 || batch[0] != ds[0] || batch[1] != ds[1] || batch[2] != ds[2] {
		t.Fatalf("take = %v, want the first three in order", batch)
	}
	if len(q.take()) != 0 {
		t.Fatal("a second take returned deliveries again")
	}
	if !q.push(ds[3]) {
		t.Fatal("push after a take refused")
	}
	if b := q.take(); len(b) != 1 || b[0] != ds[3] {
		t.Fatalf("take = %v, want the last", b)
	}
}

// TestDeliveryQueueReleasesWhatItHeld: a drained queue holds no deliveries, and no backing array beyond
// keptQueueCap once a burst is over.
func TestDeliveryQueueReleasesWhatItHeld(t *testing.T) {
	q := newDeliveryQueue(1024, 1<<20)
	for range 1000 {
		q.push(&Delivery{})
	}
	burst := q.take()
	if len(burst) != 1000 {
		t.Fatalf("took %d", len(burst))
	}
	q.push(&Delivery{})
	q.take() // the burst's array is the spare now, and too large to keep
	q.take()
	if c := cap(q.items) + cap(q.spare); c > 2*keptQueueCap {
		t.Fatalf("a drained queue keeps arrays of %d slots", c)
	}
	for _, d := range append(q.items[:cap(q.items)], q.spare[:cap(q.spare)]...) {
		if d != nil {
			t.Fatal("a drained queue still references a delivery")
		}
	}
}

// The queue is bounded in payload bytes too: behind a slow handler, 1024 deliveries of 512 KiB held 512 MiB. An
// empty queue takes a delivery of any size; a take gives the bytes back.
func TestDeliveryQueueIsBoundedInBytes(t *testing.T) {
	q := newDeliveryQueue(1024, 10<<10)
	kib := func(n int) *Delivery { return &Delivery{Data: make([]byte, n<<10)} }
	for i := range 2 {
		if !q.push(kib(4)) {
			t.Fatalf("push %d of 4 KiB refused with %d KiB queued", i, 4*i)
		}
	}
	if q.push(kib(4)) {
		t.Fatal("a 4 KiB delivery queued over 8 KiB of a 10 KiB queue")
	}
	if !q.push(kib(2)) {
		t.Fatal("a 2 KiB delivery that fits the 10 KiB was refused")
	}
	if n := len(q.take()); n != 3 {
		t.Fatalf("took %d deliveries, want 3", n)
	}
	if !q.push(kib(20)) {
		t.Fatal("an empty queue refused a delivery larger than its bytes")
	}
	if q.push(kib(1)) {
		t.Fatal("a delivery queued behind one over the bytes")
	}
	q.take()
	if !q.push(kib(8)) || !q.push(kib(2)) { // the second push is the one that finds the bytes taken before
		t.Fatal("the bytes of what was taken were not given back")
	}
}
