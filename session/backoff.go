package session

import (
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff policy with full jitter, a cap and a give-up, for redialing peers.
// The n-th delay (from 0) is drawn uniformly from [0, min(Max, Base*2^n)): a Base of 0 or less gives no delay. It
// is a plain value with no goroutines (a struct literal works too; NewBackoff also sets its random source); it is
// not safe for concurrent use.
type Backoff struct {
	// Base is the ceiling of the first delay.
	Base time.Duration
	// Max caps the ceiling of every delay.
	Max time.Duration
	// MaxAttempts is how many delays Next hands out before it gives up; 0 means never give up.
	MaxAttempts int

	attempt int
	rng     *rand.Rand
}

// NewBackoff returns a Backoff; rng may be nil to use a randomly seeded source.
func NewBackoff(base, max time.Duration, maxAttempts int, rng *rand.Rand) *Backoff {
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return &Backoff{Base: base, Max: max, MaxAttempts: maxAttempts, rng: rng}
}

// Ceiling returns the upper bound of the next delay without consuming an attempt.
func (b *Backoff) Ceiling() time.Duration {
	if b.Base <= 0 {
		return 0
	}
	c := b.Base
	for i := 0; i < b.attempt && c < b.Max; i++ {
		if c > b.Max/2 { // doubling would pass Max, or wrap past math.MaxInt64 to a value below it
			c = b.Max
			break
		}
		c *= 2
	}
	return min(c, max(b.Max, 0))
}

// Next returns the next delay, or false when MaxAttempts delays have been handed out already.
func (b *Backoff) Next() (time.Duration, bool) {
	if b.MaxAttempts > 0 && b.attempt >= b.MaxAttempts {
		return 0, false
	}
	c := b.Ceiling()
	b.attempt++
	if c <= 0 {
		return 0, true
	}
	if b.rng == nil { // a struct literal
		b.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return time.Duration(b.rng.Int64N(int64(c))), true
}

// Attempts is how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts over after a success.
func (b *Backoff) Reset() { b.attempt = 0 }
