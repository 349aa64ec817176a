package poll

import (
	"testing"
	"time"
)

// fakeT records a Fatalf instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = format
	panic(f) // as t.Fatalf ends the goroutine: Until must not go on
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	Until(t, 5*time.Second, func() bool { n++; return n == 3 }, "the third check")
	if n != 3 {
		t.Fatalf("checked %d times, want 3", n)
	}
}

func TestUntilFailsAfterItsDeadline(t *testing.T) {
	f := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		Until(f, 20*time.Millisecond, func() bool { return false }, "never")
	}()
	if f.failed == "" {
		t.Fatal("Until did not fail once its deadline passed")
	}
}
