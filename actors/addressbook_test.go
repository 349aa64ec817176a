package actors

import (
	"fmt"
	"testing"

	"github.com/actormesh/actormesh/session"
)

// TestAddressBookTakesNewAddressesWhenFull: a full book takes a new peer's address, forgetting another's (a flood
// of records used to fill it for good, so that no node learned later had an address to dial), and stays bounded.
func TestAddressBookTakesNewAddressesWhenFull(t *testing.T) {
	id := func(i int) session.NodeID { return session.NodeID{byte(i), byte(i >> 8), 1} }
	b := newAddressBook(3)
	for i := range 1000 {
		b.put(id(i), fmt.Sprintf("10.0.%d.%d:1", i>>8, i&255))
		if got, ok := b.get(id(i)); !ok || got != fmt.Sprintf("10.0.%d.%d:1", i>>8, i&255) {
			t.Fatalf("address %d just learned: %q %v", i, got, ok)
		}
		if len(b.m) > 3 {
			t.Fatalf("book holds %d, bound 3", len(b.m))
		}
	}
	b.put(id(999), "10.9.9.9:1") // learned again: updated in place
	if got, _ := b.get(id(999)); got != "10.9.9.9:1" || len(b.m) != 3 {
		t.Fatalf("updated address %q, %d held", got, len(b.m))
	}
	b.put(session.NodeID{}, "10.0.0.1:1")
	b.put(id(5000), "")
	if _, ok := b.get(session.NodeID{}); ok || len(b.m) != 3 {
		t.Fatal("a zero id or an empty address was taken")
	}
}
