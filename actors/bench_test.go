package actors_test

import (
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
