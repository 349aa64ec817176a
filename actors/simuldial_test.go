package actors_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
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
// dropped what came on it: one direction often lost most of its 100 messages (an audit's finding). It read on for
// 1 s only after its goodbye, and a peer stalled longer lost what it sent on it (once in ~100 runs under load:
// TestAPeerStalledPastTheCloseFlushHasItsMessagesOnTheLosingConnectionDelivered forces it). No Send fails either:
// until stop 60 a few in a round failed with ErrPeerGone, having taken the losing connection as it closed, or
// found none in the peer set between the loser's leaving it and the winner's entering it, or (1 run in ~12 of
// -count=20 under load) were answered with the loser, which the peer closed before the Send took it from the peer
// set, the winner still in its handshake here (Node.dialFor dials once more). On the in-memory transport the
// node's half-close failed once the peer had closed (unlike TCP's; fixed in testkit's memConn at stop 61), and a
// node whose writer ran late dropped the peer's last messages on the loser (once in 20 runs under load). A failure
// lists each side's failed Sends with their errors, its dropped counts and its disconnects, taken when the wait
// ended.
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
			var failed [2]sendErrors
			var wg sync.WaitGroup
			for side, from := range nodes {
				to := nodes[1-side]
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range 25 {
							if err := from.Send(ctxTimeout(t, 10*time.Second), to.ID(), "count/1", wrapperspb.String(fmt.Sprint(k))); err != nil {
								failed[side].add(err)
								continue
							}
							sent[side].Add(1)
						}
					}()
				}
			}
			wg.Wait()
			// What each side sent, failed to send (with the errors), dropped from its queues and read and dropped,
			// and how its connections closed, taken when the wait ends: the counts the failure message gave were
			// taken before the wait, as the Sends returned.
			report := func() string {
				var b strings.Builder
				for side, n := range nodes {
					st := n.Stats()
					fmt.Fprintf(&b, "\n  %c sent %d (failed: %s), %c received %d; %c's QueueDropped %d, InboundDropped %v, Disconnects %v",
						"ab"[side], sent[side].Load(), failed[side].String(), "ab"[1-side], recv[1-side].Load(), "ab"[side],
						st.QueueDropped, nonZero(st.InboundDropped), nonZero(st.Disconnects))
				}
				return b.String()
			}
			if testkit.Poll(context.Background(), 10*time.Second, func() bool {
				return recv[1].Load() >= sent[0].Load() && recv[0].Load() >= sent[1].Load()
			}) != nil {
				t.Fatalf("mem %v, round %d: not every message sent delivered:%s", mem, round, report())
			}
			if failed[0].count()+failed[1].count() > 0 {
				// The peer stays connected throughout, over one connection or the other: a Send that took the
				// loser as it closed goes over the winner, and the winner takes the loser's place in one step.
				t.Fatalf("mem %v, round %d: Sends failed while the peer stayed connected:%s", mem, round, report())
			}
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

// sendErrors counts the errors of failed Sends by their text.
type sendErrors struct {
	mu sync.Mutex
	m  map[string]int
}

func (e *sendErrors) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]int)
	}
	e.m[err.Error()]++
}

func (e *sendErrors) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.m {
		n += c
	}
	return n
}

// String lists the errors, each with its count, or says "none".
func (e *sendErrors) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.m) == 0 {
		return "none"
	}
	var parts []string
	for _, text := range slices.Sorted(maps.Keys(e.m)) {
		parts = append(parts, fmt.Sprintf("%d× %q", e.m[text], text))
	}
	return strings.Join(parts, ", ")
}

// nonZero is m without its zero counts.
func nonZero(m map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64)
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
