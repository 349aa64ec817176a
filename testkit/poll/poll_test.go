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

func TestTakeReceivesNValuesOrFails(t *testing.T) {
	ch := make(chan int, 5)
	for i := range 5 {
		ch <- i
	}
	if got := Take(t, ch, 3, time.Second, "ints"); len(got) != 3 || got[2] != 2 {
		t.Fatalf("Take = %v, want the first 3", got)
	}
	f := &fakeT{TB: t}
	func() {
		defer func() { _ = recover() }()
		Take(f, ch, 3, 20*time.Millisecond, "ints") // only 2 left
	}()
	if f.failed == "" {
		t.Fatal("Take did not fail when a value never came")
	}
}
