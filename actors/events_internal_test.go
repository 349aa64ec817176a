package actors

import (
	"testing"

	"github.com/actormesh/actormesh/messages"
)

// An event published after the node's Close closed the subscriptions' channels (a Close misused from a node
// goroutine returns after the stop timeout, its actors still running) is counted in Dropped: it was lost
// uncounted. After a subscription's own Close, the subscription hears nothing more, and counts nothing.
func TestAnEventAfterTheNodesCloseIsCountedDropped(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DisableDiscovery = true
	n, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	atClose, err := n.Events(4)
	if err != nil {
		t.Fatal(err)
	}
	own, err := n.Events(4)
	if err != nil {
		t.Fatal(err)
	}
	own.Close()
	n.closeEventSubs() // as Close does once StopFuture returned, here at its timeout
	n.events.Publish(&messages.PeerDisconnected{})
	if _, open := <-atClose.C; open {
		t.Fatal("the node's Close left the channel open")
	}
	if got := atClose.Dropped(); got != 1 {
		t.Fatalf("an event after the node's Close: Dropped %d, want 1", got)
	}
	if got := own.Dropped(); got != 0 {
		t.Fatalf("an event after the subscription's own Close: Dropped %d, want 0", got)
	}
}
