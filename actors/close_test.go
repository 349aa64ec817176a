package actors_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// A node redialing many unreachable peers in a tight loop while connected to another must still close promptly:
// redial and dial messages queued behind the stop must not reach a stopped peer manager's state.
func TestCloseWhileRedialingManyPeers(t *testing.T) {
	for iter := 0; iter < 10; iter++ {
		var dead []session.PeerAddr
		for i := 0; i < 20; i++ {
			id, err := session.GenerateIdentity()
			if err != nil {
				t.Fatal(err)
			}
			dead = append(dead, session.PeerAddr{ID: id.NodeID(), Addr: fmt.Sprintf("127.0.0.1:%d", 1+i)})
		}
		nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
			if i == 0 {
				cfg.Peers = dead
				cfg.RedialBase, cfg.RedialMax, cfg.RedialAttempts = 100*time.Microsecond, time.Millisecond, 0
			}
		}))
		nw.Connect(0, 1)
		closed := make(chan error, 1)
		go func() { closed <- nw.Nodes[0].Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("iteration %d: Close hung", iter)
		}
		nw.Close()
	}
}
