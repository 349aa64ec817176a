package routing

import (
	"time"

	"github.com/actormesh/actormesh/session"
)

// RateLimiter is a per-peer token bucket: each peer may make Burst requests at once and Rate per second after that.
// It is bounded: at most MaxPeers peers are tracked, the stalest forgotten first. No goroutines; not safe for
// concurrent use.
type RateLimiter struct {
	rate     float64
	burst    float64
	maxPeers int
	peers    map[session.NodeID]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter allowing burst requests at once and rate per second per peer, tracking at most
// maxPeers peers.
func NewRateLimiter(rate float64, burst, maxPeers int) *RateLimiter {
	return &RateLimiter{rate: rate, burst: float64(burst), maxPeers: maxPeers, peers: make(map[session.NodeID]*tokenBucket)}
}

// Allow takes a token for peer at time now, reporting whether the request may proceed.
func (l *RateLimiter) Allow(peer session.NodeID, now time.Time) bool {
	b, ok := l.peers[peer]
	if !ok {
		if len(l.peers) >= l.maxPeers {
			l.evictStalest()
		}
		b = &tokenBucket{tokens: l.burst, last: now}
		l.peers[peer] = b
	}
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Forget drops a peer's state.
func (l *RateLimiter) Forget(peer session.NodeID) { delete(l.peers, peer) }

func (l *RateLimiter) evictStalest() {
	var oldest session.NodeID
	var at time.Time
	first := true
	for id, b := range l.peers {
		if first || b.last.Before(at) {
			oldest, at, first = id, b.last, false
		}
	}
	delete(l.peers, oldest)
}
