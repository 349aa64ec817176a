package actors_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// A send queue of SendQueueBytes = MaxMessageSize (the least Config allows) takes a message of the largest size the
// peer takes while it is idle, though the message and its per-item overhead are over the queue's limit: an
// application message waits for room only behind other items, and an idle queue never frees any. (A mutation
// audit: with the application's wait made regardless of what is queued, no test failed; such a Send waited for
// good and failed with ErrOverloaded.)
func TestAnIdleSendQueueTakesAMessageOfTheLargestSize(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.MaxMessageSize = 64 << 10
		cfg.SendQueueBytes = 64 << 10
		cfg.InboundPendingBytes = 64 << 10
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	var delivered atomic.Int64
	sinkActor(t, b, "sink/1", &delivered)
	nw.Connect(0, 1)
	for n := 64 << 10; ; n-- { // the largest payload whose message the peer takes
		err := a.Send(ctxTimeout(t, 2*time.Second), b.ID(), "sink/1", wrapperspb.Bytes(make([]byte, n)))
		if errors.Is(err, actors.ErrMessageTooLarge) {
			continue
		}
		if err != nil {
			t.Fatalf("a send of %d payload bytes, to an idle queue: %v", n, err)
		}
		break
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return delivered.Load() == 1 }, "the message delivered")
}
