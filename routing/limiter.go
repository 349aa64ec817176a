package routing

import "time"

// RateLimiter is a token bucket per key (a peer's NodeID, a remote IP, ...): each key may make Burst requests at
// once and Rate per second after that. It is bounded: at most maxKeys keys are tracked, the stalest forgotten first.
// No goroutines; not safe for concurrent use. The zero RateLimiter is not usable: make one with NewRateLimiter.
type RateLimiter[K comparable] struct {
	rate    float64
	burst   float64
	maxKeys int
	buckets map[K]*tokenBucket
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter allowing burst requests at once and rate per second per key, tracking at most
// maxKeys keys (at least one).
func NewRateLimiter[K comparable](rate float64, burst, maxKeys int) *RateLimiter[K] {
	return &RateLimiter[K]{rate: rate, burst: float64(burst), maxKeys: max(maxKeys, 1), buckets: make(map[K]*tokenBucket)}
}

// Allow takes a token for key at time now, reporting whether the request may proceed. A refused request takes
// nothing, so retrying does not extend the wait.
func (l *RateLimiter[K]) Allow(key K, now time.Time) bool { return l.AllowN(key, 1, now) }

// AllowN takes n tokens for key at time now, reporting whether the request may proceed: a request that costs more
// than the others. n over Burst takes the whole burst, so that the largest request passes once the bucket is full
// rather than never. A refused request takes nothing.
func (l *RateLimiter[K]) AllowN(key K, n float64, now time.Time) bool {
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.maxKeys {
			l.evictStalest()
		}
		b = &tokenBucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	return b.take(l.rate, l.burst, min(n, l.burst), now)
}

// Ready reports whether Allow would let a request for key through at now, taking nothing.
func (l *RateLimiter[K]) Ready(key K, now time.Time) bool {
	return l.Tokens(key, now) >= 1
}

// Tokens returns the tokens key's bucket holds at now, refilled for the time since its last take (Burst for a key
// not tracked), taking nothing: what AllowN could take at now.
func (l *RateLimiter[K]) Tokens(key K, now time.Time) float64 {
	b, ok := l.buckets[key]
	if !ok {
		return l.burst
	}
	tokens := b.tokens
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		tokens = min(l.burst, tokens+elapsed*l.rate)
	}
	return tokens
}

// take refills the bucket for the time since its last take and takes n tokens, if it holds them.
func (b *tokenBucket) take(rate, burst, n float64, now time.Time) bool {
	if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(burst, b.tokens+elapsed*rate)
		b.last = now
	}
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// TokenBucket is a single key's rate limit, as RateLimiter keeps one per key, without the map: Burst requests at
// once and Rate per second after that. Make it with NewTokenBucket. Not safe for concurrent use.
type TokenBucket struct {
	rate, burst float64
	b           tokenBucket
}

// NewTokenBucket returns a full bucket at now.
func NewTokenBucket(rate float64, burst int, now time.Time) TokenBucket {
	return TokenBucket{rate: rate, burst: float64(burst), b: tokenBucket{tokens: float64(burst), last: now}}
}

// Allow takes a token at now, reporting whether the request may proceed; a refused request takes nothing.
func (t *TokenBucket) Allow(now time.Time) bool { return t.b.take(t.rate, t.burst, 1, now) }

// Forget drops a key's state.
func (l *RateLimiter[K]) Forget(key K) { delete(l.buckets, key) }

// Len returns how many keys are tracked.
func (l *RateLimiter[K]) Len() int { return len(l.buckets) }

func (l *RateLimiter[K]) evictStalest() {
	if k, ok := earliest(l.buckets, func(b *tokenBucket) time.Time { return b.last }); ok {
		delete(l.buckets, k)
	}
}

// earliest returns the key of m whose value's time at is the earliest, and false when m is empty.
func earliest[K comparable, V any](m map[K]V, at func(V) time.Time) (K, bool) {
	var key K
	var first time.Time
	found := false
	for k, v := range m {
		if t := at(v); !found || t.Before(first) {
			key, first, found = k, t, true
		}
	}
	return key, found
}
