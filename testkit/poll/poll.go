// Package poll waits, in tests, for a condition to hold: it polls the condition with a deadline, so that tests
// never sleep as a way to synchronise. It imports nothing of actormesh, so that the tests of every package, those
// that testkit itself depends on included, can use it.
package poll

import (
	"context"
	"testing"
	"time"
)

// Every is how often Until checks its condition.
const Every = 2 * time.Millisecond

// Wait polls cond every Every until it holds (nil), or until timeout passes or ctx ends (the context's error).
func Wait(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(Every)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Until polls cond every Every until it holds, failing t (Fatalf, naming what it waited for) once d has passed.
func Until(t testing.TB, d time.Duration, cond func() bool, what string) {
	t.Helper()
	if Wait(context.Background(), d, cond) != nil {
		t.Fatalf("waited %v for %s", d, what)
	}
}

// Take receives n values from ch, failing t (Fatalf, naming what it waited for) if one takes longer than d to
// come.
func Take[T any](t testing.TB, ch <-chan T, n int, d time.Duration, what string) []T {
	t.Helper()
	out := make([]T, 0, n)
	for len(out) < n {
		select {
		case v := <-ch:
			out = append(out, v)
		case <-time.After(d):
			t.Fatalf("got %d of %d %s, then none for %v", len(out), n, what, d)
		}
	}
	return out
}
