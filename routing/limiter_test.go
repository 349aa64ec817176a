package routing

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

func TestRateLimiterBurstThenRate(t *testing.T) {
	l := NewRateLimiter(10, 5, 100)
	var p session.NodeID
	p[0] = 1
	now := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		if !l.Allow(p, now) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.Allow(p, now) {
		t.Fatal("request beyond the burst allowed")
	}
	now = now.Add(100 * time.Millisecond) // one token at 10/s
	if !l.Allow(p, now) || l.Allow(p, now) {
		t.Fatal("refill should allow exactly one more request after 100ms")
	}
	var q session.NodeID
	q[0] = 2
	if !l.Allow(q, now) {
		t.Fatal("another peer is limited by the first one's flood")
	}
}

func TestRateLimiterIsBounded(t *testing.T) {
	l := NewRateLimiter(1, 1, 3)
	now := time.Unix(0, 0)
	for i := 0; i < 10; i++ {
		var p session.NodeID
		p[0] = byte(i)
		l.Allow(p, now.Add(time.Duration(i)*time.Second))
	}
	if len(l.peers) != 3 {
		t.Fatalf("limiter tracks %d peers, bound 3", len(l.peers))
	}
}
