package session

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoffGrowsToCapWithFullJitter(t *testing.T) {
	b := NewBackoff(10*time.Millisecond, 160*time.Millisecond, 0, rand.New(rand.NewPCG(1, 2)))
	want := []time.Duration{10, 20, 40, 80, 160, 160, 160}
	for i, w := range want {
		w *= time.Millisecond
		if got := b.Ceiling(); got != w {
			t.Fatalf("attempt %d: ceiling %v, want %v", i, got, w)
		}
		d, ok := b.Next()
		if !ok {
			t.Fatalf("attempt %d: gave up with no MaxAttempts", i)
		}
		if d < 0 || d >= w {
			t.Fatalf("attempt %d: delay %v outside [0,%v)", i, d, w)
		}
	}
	b.Reset()
	if got := b.Ceiling(); got != 10*time.Millisecond {
		t.Fatalf("after reset ceiling %v", got)
	}
}

func TestBackoffJitterSpreadsDelays(t *testing.T) {
	b := NewBackoff(time.Second, time.Second, 0, rand.New(rand.NewPCG(3, 4)))
	var lo, hi int
	for i := 0; i < 1000; i++ {
		d, _ := b.Next()
		if d < 500*time.Millisecond {
			lo++
		} else {
			hi++
		}
	}
	if lo < 400 || hi < 400 {
		t.Fatalf("full jitter should spread delays over [0,cap): %d below half, %d above", lo, hi)
	}
}

func TestBackoffGivesUp(t *testing.T) {
	b := NewBackoff(time.Millisecond, time.Second, 3, nil)
	for i := 0; i < 3; i++ {
		if _, ok := b.Next(); !ok {
			t.Fatalf("gave up after %d attempts, want 3", i)
		}
	}
	if _, ok := b.Next(); ok {
		t.Fatal("did not give up after MaxAttempts")
	}
	if b.Attempts() != 3 {
		t.Fatalf("attempts %d", b.Attempts())
	}
}

func TestBackoffHugeAttemptCountDoesNotOverflow(t *testing.T) {
	b := NewBackoff(time.Hour, 2*time.Hour, 0, nil)
	for i := 0; i < 200; i++ {
		if d, _ := b.Next(); d < 0 || d >= 2*time.Hour {
			t.Fatalf("delay %v out of range at %d", d, i)
		}
	}
}

// The ceiling stays at Max once reached, whatever Max: near math.MaxInt64 the doubling wrapped, and the ceiling fell
// back below Max (from Max to 160 127 h at attempt 50 with a Base of 200 ms).
func TestBackoffCeilingStaysAtAHugeMax(t *testing.T) {
	b := NewBackoff(200*time.Millisecond, time.Duration(math.MaxInt64), 0, nil)
	var prev time.Duration
	for i := range 200 {
		c := b.Ceiling()
		if c < prev {
			t.Fatalf("the ceiling fell from %v to %v at attempt %d", prev, c, i)
		}
		prev = c
		b.Next()
	}
	if prev != time.Duration(math.MaxInt64) {
		t.Fatalf("ceiling %v after 200 attempts, want Max", prev)
	}
}

// A Backoff made as a struct literal works (Next dereferenced its nil random source), and a Base of 0 gives no
// delay, as the doc's range says (its ceiling was Max).
func TestBackoffLiteralAndZeroBase(t *testing.T) {
	b := Backoff{Base: time.Millisecond, Max: time.Second}
	for i := range 20 {
		d, ok := b.Next()
		if !ok || d < 0 || d >= time.Second {
			t.Fatalf("delay %d of a struct literal: %v, %v", i, d, ok)
		}
	}
	zero := Backoff{Max: time.Second}
	for i := range 5 {
		if c := zero.Ceiling(); c != 0 {
			t.Fatalf("ceiling %d with Base 0: %v, want 0", i, c)
		}
		if d, ok := zero.Next(); d != 0 || !ok {
			t.Fatalf("delay %d with Base 0: %v, %v; want 0", i, d, ok)
		}
	}
}

// The ceiling is capped by Max even when Base is above it, and a delay is drawn below its ceiling, never equal to
// it: with a 1 ns ceiling every delay is 0.
func TestBackoffCeilingAndDelayBounds(t *testing.T) {
	b := NewBackoff(10*time.Second, time.Second, 0, rand.New(rand.NewPCG(3, 4)))
	for i := range 3 {
		if c := b.Ceiling(); c != time.Second {
			t.Fatalf("attempt %d: Base 10s, Max 1s: ceiling %v, want 1s", i, c)
		}
		if d, ok := b.Next(); !ok || d < 0 || d >= time.Second {
			t.Fatalf("attempt %d: Base 10s, Max 1s: Next = %v, %v; want a delay in [0, 1s)", i, d, ok)
		}
	}
	tiny := NewBackoff(time.Nanosecond, time.Nanosecond, 0, rand.New(rand.NewPCG(5, 6)))
	for i := range 100 {
		if d, ok := tiny.Next(); !ok || d != 0 {
			t.Fatalf("attempt %d: a 1ns ceiling gave %v, %v; want 0 (delays are drawn from [0, ceiling))", i, d, ok)
		}
	}
}

// A negative Base or Max gives a ceiling of 0, never a negative one, and delays of 0.
func TestBackoffNegativeBoundsGiveNoDelay(t *testing.T) {
	for _, b := range []Backoff{{Base: -time.Second, Max: time.Minute}, {Base: time.Second, Max: -time.Minute}} {
		for i := range 3 {
			if c := b.Ceiling(); c != 0 {
				t.Fatalf("Base %v, Max %v, attempt %d: ceiling %v, want 0", b.Base, b.Max, i, c)
			}
			if d, ok := b.Next(); d != 0 || !ok {
				t.Fatalf("Base %v, Max %v, attempt %d: Next = %v, %v; want 0", b.Base, b.Max, i, d, ok)
			}
		}
	}
}
