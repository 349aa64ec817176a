package adminapi

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/testkit"
)

// A huge StreamBuffer is capped: each stream's queue is a channel made at that size when the stream opens, and
// 1<<40 ended the process out of memory at the first stream.
func TestStreamBufferIsCapped(t *testing.T) {
	api := New(testkit.NewNetwork(t, 1).Nodes[0], Config{StreamBuffer: 1 << 40, StreamKeepalive: time.Nanosecond})
	defer api.Close()
	if api.cfg.StreamBuffer != MaxStreamBuffer {
		t.Fatalf("StreamBuffer %d, want it capped at %d", api.cfg.StreamBuffer, MaxStreamBuffer)
	}
	if api.cfg.StreamKeepalive != minStreamKeepalive { // a nanosecond wrote keepalives back to back
		t.Fatalf("StreamKeepalive %v, want it raised to %v", api.cfg.StreamKeepalive, minStreamKeepalive)
	}
}
