package actors_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// TestSendsOverSimultaneousDialsAreAllDelivered: two nodes not connected yet send to each other at the same moment,
// so both dial, and the tie-break closes one of the two connections as a duplicate. Every Send that returned nil is
// delivered, on TCP and on the in-memory transport. A node may send on the losing connection before it learns of
// the tie-break; the other side, which refused it as it came up or closed it when the winner came up, read and
// dropped what came on it: one direction often lost most of its 100 messages (an audit's finding).
func TestSendsOverSimultaneousDialsAreAllDelivered(t *testing.T) {
	duplicates := 0
	for _, mem := range []bool{false, true} {
		for round := range 8 {
			var recv [2]atomic.Int64
			mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: time.Millisecond}})
			nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
				if mem {
					cfg.Transport = mn.NewTransport()
				}
				cfg.Protocols = append(cfg.Protocols, actors.Protocol{ID: "count/1", Props: actor.PropsFromFunc(func(c actor.Context) {
					if _, ok := c.Message().(*actors.Inbound); ok {
						recv[i].Add(1)
					}
				})})
			}))
			nodes := nw.Nodes
			for i, n := range nodes {
				if err := n.AddAddress(nodes[1-i].ID(), nodes[1-i].Addr().Addr); err != nil {
					t.Fatal(err)
				}
			}
			var sent [2]atomic.Int64
			var failed sync.Map
			var wg sync.WaitGroup
			for side, from := range nodes {
				to := nodes[1-side]
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range 25 {
							if err := from.Send(ctxTimeout(t, 10*time.Second), to.ID(), "count/1", wrapperspb.String(fmt.Sprint(k))); err != nil {
								failed.Store(err.Error(), true)
								continue
							}
							sent[side].Add(1)
						}
					}()
				}
			}
			wg.Wait()
			testkit.WaitFor(t, 10*time.Second, func() bool {
				return recv[1].Load() >= sent[0].Load() && recv[0].Load() >= sent[1].Load()
			}, "every message sent delivered (mem %v, round %d): a sent %d, b received %d; b sent %d, a received %d",
				mem, round, sent[0].Load(), recv[1].Load(), sent[1].Load(), recv[0].Load())
			failed.Range(func(k, _ any) bool { t.Logf("mem %v, round %d: a Send failed: %v", mem, round, k); return true })
			for _, n := range nodes {
				duplicates += int(n.Stats().Disconnects[messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION.String()])
			}
			nw.Close()
		}
	}
	if duplicates == 0 {
		t.Fatal("no round made a duplicate connection: the test did not exercise the tie-break")
	}
}
