package actors_test

import (
	"errors"
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

// blobServer answers every request with a payload of size bytes.
func blobServer(size int) *actor.Props {
	blob := make([]byte, size)
	return actor.PropsFromFunc(func(c actor.Context) {
		if in, ok := c.Message().(*actors.Inbound); ok && in.IsRequest() {
			_ = in.Reply(wrapperspb.Bytes(blob))
		}
	})
}

// Concurrent requests for large replies (a block or chunk sync): flow control bounds the requests the replier's
// actor holds, not the replies it queues, and 40-64 replies of 900 KiB filled the replier's 16 MiB send queue: it
// disconnected the requester as slow, reading all along, and most requests failed with ErrPeerGone (an audit's
// finding). Replies now take at most half the queue; those that do not fit are answered OVERLOADED, which the
// requester retries.
func TestConcurrentRequestsForLargeRepliesDoNotDisconnectTheRequester(t *testing.T) {
	for _, c := range []struct {
		name       string
		mem        bool
		concurrent int
	}{{"mem-40MBps", true, 40}, {"tcp", false, 64}} {
		t.Run(c.name, func(t *testing.T) {
			mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: time.Millisecond, Bandwidth: 40 << 20}})
			nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
				cfg.DisableDiscovery = true
				if c.mem {
					cfg.Transport = mn.NewTransport()
				}
				if i == 1 {
					cfg.Protocols = append(cfg.Protocols, actors.Protocol{ID: "blob/1", Props: blobServer(900 << 10)})
				}
			}))
			a, b := nw.Nodes[0], nw.Nodes[1]
			nw.Connect(0, 1)
			ev := watchEvents(t, a)
			var wg sync.WaitGroup
			var failed, retries atomic.Int64
			var firstErr atomic.Value
			ctx := ctxTimeout(t, 30*time.Second)
			for range c.concurrent {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						_, err := a.Request(ctx, b.ID(), "blob/1", wrapperspb.String("get"))
						if errors.Is(err, actors.ErrOverloaded) && ctx.Err() == nil {
							retries.Add(1)
							continue // the replier's queue was half full: told to retry
						}
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err)
						}
						return
					}
				}()
			}
			wg.Wait()
			if failed.Load() > 0 || ev.disconnects(b.ID()) > 0 {
				t.Fatalf("%d of %d requests failed (first: %v); disconnects: %v", failed.Load(), c.concurrent, firstErr.Load(), ev.disconnectsFrom(b.ID()))
			}
			t.Logf("%d requests retried after an OVERLOADED answer", retries.Load())
		})
	}
}

// A sender keeping within a peer's window larger than its own send queue (the peer's InboundPendingBytes 64 MiB,
// 32 MiB a protocol, the sender's SendQueueBytes the default 16 MiB) filled that queue: Send failed with
// ErrSlowPeer and the peer was disconnected, the Sends queued before, which had returned nil, dropped (an audit's
// finding). Sends now wait while the queue is half full.
func TestASenderWithinThePeersWindowIsNotDisconnectedAsSlow(t *testing.T) {
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: time.Millisecond, Bandwidth: 40 << 20}})
	var got atomic.Int64
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.Transport = mn.NewTransport()
		if i == 1 {
			cfg.InboundPendingBytes = 64 << 20
			cfg.Protocols = append(cfg.Protocols, actors.Protocol{ID: "bulk/1", Props: actor.PropsFromFunc(func(c actor.Context) {
				if _, ok := c.Message().(*actors.Inbound); ok {
					got.Add(1)
				}
			})})
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	nw.Connect(0, 1)
	blob := make([]byte, 900<<10)
	const count = 30
	for k := range count {
		if err := a.Send(ctxTimeout(t, 10*time.Second), b.ID(), "bulk/1", wrapperspb.Bytes(blob)); err != nil {
			t.Fatalf("send %d of %d x 900 KiB, within the peer's 32 MiB window: %v; dropped from the queue: %d",
				k, count, err, a.Stats().QueueDropped)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return got.Load() == count }, "every message delivered")
	if d := a.Stats().Disconnects[messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER.String()]; d > 0 {
		t.Fatalf("%d SLOW_PEER disconnects", d)
	}
}
