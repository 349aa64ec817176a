package actors

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestDedicatedDispatcherRunsEveryRunInOrderThenStops(t *testing.T) {
	d := newDedicatedDispatcher()
	var got []int
	ran := make(chan struct{}, 1)
	for i := range 100 {
		d.Schedule(func() { got = append(got, i); ran <- struct{}{} }) // one run at a time, as a mailbox schedules
		<-ran
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("run %d ran as %d", i, v)
		}
	}
	d.stop()
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the dispatcher's goroutine did not end after stop")
	}
	var after atomic.Bool
	d.Schedule(func() { after.Store(true); ran <- struct{}{} })
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("a run scheduled after stop never ran")
	}
	if !after.Load() || !d.finished() {
		t.Fatal("after stop a run must still run, on a goroutine of its own")
	}
}

func TestDedicatedDispatcherStopsWhenItsActorStops(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	d := newDedicatedDispatcher()
	got := make(chan any, 4)
	props := actor.PropsFromFunc(func(c actor.Context) {
		if s, ok := c.Message().(string); ok {
			got <- s
		}
	}, actor.WithDispatcher(d), actor.WithReceiverMiddleware(stopDispatcherOnStop(d)))
	pid := sys.Root.Spawn(props)
	sys.Root.Send(pid, "hello")
	select {
	case m := <-got:
		if m != "hello" {
			t.Fatalf("got %v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the actor never got its message")
	}
	if d.finished() {
		t.Fatal("the dispatcher ended while its actor runs")
	}
	if err := sys.Root.StopFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the dispatcher's goroutine outlived its actor")
	}
}
