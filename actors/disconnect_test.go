package actors_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// keptPeer tells whether n holds a connection to id that it keeps.
func keptPeer(n *actors.Node, id [32]byte) bool {
	for _, p := range n.Peers() {
		if p.ID == id {
			return p.Kept
		}
	}
	return false
}

// A peer the application disconnected stays disconnected although discovery would pick it: the bootstrapper
// redialed it as one of its outbound candidates within seconds, so Disconnect did not stop redialing as it says.
// The application's own Connect ends the hold.
func TestDisconnectedPeerIsNotRedialedByDiscovery(t *testing.T) {
	logs := &testkit.SyncBuffer{}
	nw := testkit.NewNetwork(t, 3, testkit.WithBootnode(), testkit.WithLogger(zerolog.New(logs)),
		testkit.WithLogLevel(zerolog.DebugLevel), testkit.WithConfig(func(i int, cfg *actors.Config) {
			cfg.Bootstrap.Interval = 50 * time.Millisecond
			// Node 2 wants more outbound connections than there are peers: its bootstrapper tries every one it does
			// not keep. Node 1 is content with its bootnode, so it does not dial node 2 back.
			cfg.Bootstrap.TargetOutbound = map[int]int{0: 0, 1: 1, 2: 5}[i]
		}))
	node, other := nw.Nodes[2], nw.Nodes[1]
	testkit.WaitFor(t, 10*time.Second, func() bool { return keptPeer(node, other.ID()) },
		"discovery to connect node 2 to node 1")
	if err := node.Disconnect(other.ID()); err != nil {
		t.Fatal(err)
	}
	// The bootstrapper, one outbound connection short, tries its candidate again and is refused.
	testkit.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "the application disconnected this peer")
	}, "the bootstrapper's dial to be refused")
	if keptPeer(node, other.ID()) {
		t.Fatal("the node keeps a connection to the peer it disconnected")
	}
	if err := node.Connect(ctxTimeout(t, 10*time.Second), other.Addr(), true); err != nil {
		t.Fatalf("the application's Connect to the peer it disconnected: %v", err)
	}
	if !keptPeer(node, other.ID()) {
		t.Fatal("the application's Connect with keep did not keep the peer")
	}
}
