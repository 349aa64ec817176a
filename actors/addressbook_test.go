package actors

import (
	"fmt"
	"testing"

	"github.com/actormesh/actormesh/session"
)

// TestAddressBookForgetsTheLeastRecentlyLearned: a full book takes a new peer's address and forgets the one
// learned least recently (a flood of records used to fill it for good, so that no node learned later had an
// address to dial); learning an address again makes it recent.
func TestAddressBookForgetsTheLeastRecentlyLearned(t *testing.T) {
	id := func(i int) session.NodeID { return session.NodeID{byte(i), byte(i >> 8), 1} }
	b := newAddressBook(3)
	for i := range 3 {
		b.put(id(i), fmt.Sprintf("10.0.0.%d:1", i))
	}
	b.put(id(0), "10.0.1.0:1") // learned again: now the most recent
	b.put(id(3), "10.0.0.3:1") // forgets id(1), the least recent
	for i, want := range []string{"10.0.1.0:1", "", "10.0.0.2:1", "10.0.0.3:1"} {
		if got, ok := b.get(id(i)); got != want || ok != (want != "") {
			t.Errorf("node %d: %q %v, want %q", i, got, ok, want)
		}
	}
	for i := 4; i < 1000; i++ {
		b.put(id(i), "10.0.0.9:1")
	}
	if len(b.m) != 3 || b.order.Len() != 3 {
		t.Fatalf("book holds %d (%d in order), bound 3", len(b.m), b.order.Len())
	}
	if got, ok := b.get(id(999)); !ok || got != "10.0.0.9:1" {
		t.Fatalf("the last address learned: %q %v", got, ok)
	}
	b.put(session.NodeID{}, "10.0.0.1:1")
	b.put(id(5000), "")
	if len(b.m) != 3 {
		t.Fatal("a zero id or an empty address was taken")
	}
}
