package routing

import (
	"net/netip"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

func TestRateLimiterBurstThenRate(t *testing.T) {
	l := NewRateLimiter[session.NodeID](10, 5, 100)
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

func TestRateLimiterRefusalsTakeNoToken(t *testing.T) {
	l := NewRateLimiter[string](2, 1, 10)
	now := time.Unix(0, 0)
	if !l.Allow("a", now) {
		t.Fatal("first request refused")
	}
	for i := 0; i < 100; i++ {
		if l.Allow("a", now.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("request at +%dms allowed before a token refilled", i)
		}
	}
	if !l.Allow("a", now.Add(500*time.Millisecond)) {
		t.Fatal("refused retries delayed the refill")
	}
}

func TestRateLimiterByAddr(t *testing.T) {
	l := NewRateLimiter[netip.Addr](1, 2, 10)
	now := time.Unix(0, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 2; i++ {
		if !l.Allow(a, now) {
			t.Fatalf("burst request %d refused", i)
		}
	}
	if l.Allow(a, now) {
		t.Fatal("request beyond the burst allowed")
	}
	if !l.Allow(b, now) {
		t.Fatal("one address limits another")
	}
	l.Forget(a)
	if !l.Allow(a, now) {
		t.Fatal("a forgotten address starts with a full bucket")
	}
}

func TestRateLimiterIsBounded(t *testing.T) {
	l := NewRateLimiter[session.NodeID](1, 1, 3)
	now := time.Unix(0, 0)
	for i := 0; i < 10; i++ {
		var p session.NodeID
		p[0] = byte(i)
		l.Allow(p, now.Add(time.Duration(i)*time.Second))
	}
	if l.Len() != 3 {
		t.Fatalf("limiter tracks %d peers, bound 3", l.Len())
	}
	// The stalest keys went first: the three most recent remain.
	for i := 7; i < 10; i++ {
		var p session.NodeID
		p[0] = byte(i)
		if _, ok := l.buckets[p]; !ok {
			t.Fatalf("recent peer %d was evicted", i)
		}
	}
}

func TestJitteredWaitsSpreadOverHalfToThreeHalves(t *testing.T) {
	rng := newRand(5)
	const d = 10 * time.Second
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 2000 {
		w := jittered(rng, d)
		if w < d/2 || w >= 3*d/2 {
			t.Fatalf("jittered(%v) = %v, outside [%v, %v)", d, w, d/2, 3*d/2)
		}
		lo, hi = min(lo, w), max(hi, w)
	}
	if lo > 6*time.Second || hi < 14*time.Second {
		t.Fatalf("2000 waits spread over only [%v, %v]", lo, hi)
	}
	if got := jittered(rng, 1); got != 1 {
		t.Fatalf("jittered(1ns) = %v", got)
	}
}

func TestTokenBucket(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	b := NewTokenBucket(2, 3, now)
	for i := range 3 {
		if !b.Allow(now) {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	if b.Allow(now) {
		t.Fatal("a request past the burst allowed")
	}
	if !b.Allow(now.Add(500*time.Millisecond)) || b.Allow(now.Add(500*time.Millisecond)) {
		t.Fatal("half a second at 2/s should allow exactly one more")
	}
	if n := func() (n int) {
		for b.Allow(now.Add(time.Hour)) {
			n++
		}
		return n
	}(); n != 3 {
		t.Fatalf("after an hour %d requests allowed at once, want the burst of 3", n)
	}
}

// AllowN takes n tokens or none; a cost over the burst takes the whole burst, so the largest request passes once
// the bucket is full.
func TestRateLimiterAllowN(t *testing.T) {
	l := NewRateLimiter[string](10, 20, 10)
	now := time.Unix(0, 0)
	if !l.AllowN("a", 15, now) || l.AllowN("a", 6, now) || !l.AllowN("a", 5, now) {
		t.Fatal("a burst of 20: 15 then 6 must be refused, 5 allowed")
	}
	if l.AllowN("a", 100, now.Add(1900*time.Millisecond)) {
		t.Fatal("a request over the burst passed before the bucket was full again")
	}
	if !l.AllowN("a", 100, now.Add(2*time.Second)) || l.AllowN("a", 1, now.Add(2*time.Second)) {
		t.Fatal("a request over the burst must pass once the bucket is full, and take all of it")
	}
}

// Tokens tells what a key's bucket holds, refilled to now, and takes nothing: a new key's full burst, what is
// left after AllowN, the refill since.
func TestRateLimiterTokens(t *testing.T) {
	l := NewRateLimiter[string](10, 50, 10)
	now := time.Unix(0, 0)
	if got := l.Tokens("a", now); got != 50 {
		t.Fatalf("a new key holds %v tokens, want the burst, 50", got)
	}
	if !l.AllowN("a", 30, now) {
		t.Fatal("30 of a burst of 50 refused")
	}
	if got := l.Tokens("a", now); got != 20 {
		t.Fatalf("%v tokens after taking 30 of 50, want 20", got)
	}
	now = now.Add(time.Second)
	if got := l.Tokens("a", now); got != 30 || l.Tokens("a", now) != 30 {
		t.Fatalf("%v tokens a second later at 10/s, want 30 (and Tokens takes none)", got)
	}
	if !l.AllowN("a", 30, now) || l.Allow("a", now) {
		t.Fatal("the 30 tokens Tokens told of were not exactly what AllowN could take")
	}
}
