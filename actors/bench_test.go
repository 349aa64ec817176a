package actors_test

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// BenchmarkDirectSend measures one-way 1 KiB messages between two nodes in one process through the full API
// (Send -> encrypted TCP -> protocol actor). The sender keeps at most `window` messages in flight, so the figure is
// the sustained rate, not the speed of filling a queue.
func BenchmarkDirectSend(b *testing.B) {
	nw := testkit.NewNetwork(b, 2)
	a, r := nw.Nodes[0], nw.Nodes[1]
	var received atomic.Int64
	progress := make(chan struct{}, 1)
	register(b, r, "bench/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			if received.Add(1)%256 == 0 {
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}))
	nw.Connect(0, 1)
	payload := wrapperspb.Bytes(make([]byte, 1024))
	ctx := ctxTimeout(b, 10*time.Minute)
	const window = 4096
	b.SetBytes(1024)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for int64(i)-received.Load() >= window {
			<-progress
		}
		if err := a.Send(ctx, r.ID(), "bench/1", payload); err != nil {
			b.Fatalf("send %d: %v", i, err)
		}
	}
	for received.Load() < int64(b.N) {
		select {
		case <-progress:
		case <-time.After(time.Millisecond):
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkDirectSendIsolated measures the process CPU of one 64-byte message between two nodes over the in-memory
// transport, each sent once the previous one arrived: back to back, and after a pause, as messages come to a node of
// a network that carries ten a second. After a pause the message pays for waking the threads and goroutines that
// handle it (the writer, the peer's reader, the protocol actor) from idle, and for the threads going idle again
// afterwards; the pause's own CPU (the sleep's wake-up, the nodes' upkeep) is measured alone and taken off. Stop 33,
// on this 2-core VM: 7.7-8.4 µs back to back, 145-146 µs after 5 ms (99 with GOMAXPROCS=1). The difference is the
// Go scheduler's and the host's (threads woken and parked, timers re-armed, cold caches), not the stack's work.
// node sim's nodes each take a message every 100 ms, so much of their CPU per delivery is of this kind. The figure
// after a pause varies with the host's load (112-215 µs over an hour of stop 33).
func BenchmarkDirectSendIsolated(b *testing.B) {
	mem := testkit.NewMemNetwork(testkit.MemConfig{})
	nw := testkit.NewNetwork(b, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Transport = mem.NewTransport()
		cfg.ListenAddr = fmt.Sprintf("10.0.0.%d:4000", i+1)
	}))
	a, r := nw.Nodes[0], nw.Nodes[1]
	arrived := make(chan struct{}, 1)
	register(b, r, "bench/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			arrived <- struct{}{}
		}
	}))
	nw.Connect(0, 1)
	payload := wrapperspb.Bytes(make([]byte, 64))
	ctx := ctxTimeout(b, 10*time.Minute)
	for _, pause := range []time.Duration{0, 5 * time.Millisecond} {
		b.Run(fmt.Sprintf("pause=%v", pause), func(b *testing.B) {
			var idle time.Duration
			if pause > 0 {
				cpu0 := testkit.ProcessCPU()
				for range b.N {
					time.Sleep(pause)
				}
				idle = testkit.ProcessCPU() - cpu0
			}
			cpu0 := testkit.ProcessCPU()
			for b.Loop() {
				time.Sleep(pause)
				if err := a.Send(ctx, r.ID(), "bench/1", payload); err != nil {
					b.Fatal(err)
				}
				select {
				case <-arrived:
				case <-ctx.Done():
					b.Fatal(ctx.Err())
				}
			}
			b.ReportMetric(float64((testkit.ProcessCPU()-cpu0-idle).Microseconds())/float64(b.N), "cpu-µs/msg")
		})
	}
}

// BenchmarkDirectRequest measures sequential 1 KiB request/response round trips and reports their p50 and p99.
func BenchmarkDirectRequest(b *testing.B) {
	nw := testkit.NewNetwork(b, 2)
	a, r := nw.Nodes[0], nw.Nodes[1]
	register(b, r, "bench/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok {
			_ = in.Reply(in.Payload)
		}
	}))
	nw.Connect(0, 1)
	payload := wrapperspb.Bytes(make([]byte, 1024))
	ctx := ctxTimeout(b, 10*time.Minute)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := a.Request(ctx, r.ID(), "bench/1", payload); err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds()), "p50_µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99_µs")
}

// BenchmarkDiscoveryConnection measures what one of discovery's transient connections costs both nodes: a dial and
// its handshake, the FindNode exchanges of a lookup seeded with the peer, and the close once the connection has
// been idle DiscoveryIdleTimeout. The table's revalidation and every lookup pay this for each node they meet that
// is not connected.
func BenchmarkDiscoveryConnection(b *testing.B) {
	nw := testkit.NewNetwork(b, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.TargetOutbound = 0
		cfg.DiscoveryIdleTimeout = time.Millisecond
	}))
	a, peer := nw.Nodes[0], nw.Nodes[1]
	ctx := ctxTimeout(b, 10*time.Minute)
	seeds := []session.PeerAddr{peer.Addr()}
	cpu0 := testkit.ProcessCPU()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.FindClosestFrom(ctx, routing.KeyOf(a.ID()), seeds); err != nil {
			b.Fatalf("lookup %d: %v", i, err)
		}
		testkit.WaitFor(b, 10*time.Second, func() bool { return !a.Connected(peer.ID()) && !peer.Connected(a.ID()) },
			"the discovery connection to close")
	}
	b.StopTimer()
	b.ReportMetric(float64((testkit.ProcessCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/conn")
}
