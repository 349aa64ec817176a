package gossip

import (
	"testing"
)

func TestDeliveryQueueIsBoundedAndKeepsOrder(t *testing.T) {
	q := newDeliveryQueue(3)
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
	q := newDeliveryQueue(1024)
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
