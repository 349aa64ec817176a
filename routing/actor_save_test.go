package routing

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit/poll"
)

// slowStore writes the peer store once release is closed, telling entered when a save starts; it counts the saves
// and how many ran at once.
type slowStore struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	calls   int
	running int
	most    int
}

func (s *slowStore) save(path string, records []*messages.NodeRecord, now time.Time) error {
	s.mu.Lock()
	s.calls++
	s.running++
	s.most = max(s.most, s.running)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return SaveStore(path, records, now)
}

// counts returns the saves started and the most that ran at once.
func (s *slowStore) counts() (calls, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.most
}

// The periodic save of the peer store runs off the actor: while a slow disk holds it, the actor answers, and its
// ticks start no second save. Before, the save ran in Receive, and the actor answered nothing until it was written.
func TestPeerStoreSaveDoesNotHoldTheActor(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	store := &slowStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(store.release) })
	defer release()
	cfg, p, pid := spawnSaving(t, sys, store, time.Millisecond, 10*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			release()
			_ = sys.Root.StopFuture(pid).Wait()
		}
	}()
	rec, err := NewRecord(identity(t, 1), 1, []string{"192.0.2.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	sys.Root.Send(pid, &AddRecords{Records: []*messages.NodeRecord{rec}})

	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no save of the peer store")
	}
	reply := make(chan Snapshot, 1)
	sys.Root.Send(pid, &SnapshotRequest{Reply: reply})
	select {
	case s := <-reply:
		if len(s.Entries) != 1 {
			t.Fatalf("the table holds %d entries, want 1", len(s.Entries))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot while the peer store is being saved: the save holds the actor")
	}
	for len(p.ticks) > 0 {
		<-p.ticks
	}
	for range 5 { // ticks past SaveInterval while the save is in progress
		select {
		case <-p.ticks:
		case <-time.After(5 * time.Second):
			t.Fatal("no revalidation tick while the peer store is being saved")
		}
	}
	if calls, _ := store.counts(); calls != 1 {
		t.Fatalf("%d saves started while the first was in progress, want none", calls-1)
	}

	release()
	poll.Until(t, 5*time.Second, func() bool { calls, _ := store.counts(); return calls >= 3 }, "saves once the first ended")
	if err := sys.Root.StopFuture(pid).Wait(); err != nil { // the final save, after the one in progress
		t.Fatal(err)
	}
	stopped = true
	if _, most := store.counts(); most != 1 {
		t.Fatalf("%d saves of the peer store ran at once, want 1", most)
	}
	recs, err := LoadStore(cfg.StorePath)
	if err != nil || len(recs) != 1 {
		t.Fatalf("the peer store holds %d records (%v), want 1", len(recs), err)
	}
}

// The revalidation ticks save the peer store once per SaveInterval, not at every tick.
func TestPeerStoreIsSavedOncePerSaveInterval(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	store := &slowStore{entered: make(chan struct{}, 1), release: make(chan struct{})}
	close(store.release)
	rec, err := NewRecord(identity(t, 1), 1, []string{"192.0.2.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	// The record is in the table from the actor's start: a tick finding the table empty starts no save but counts
	// as one (startSave), and a record sent after the spawn was, on a loaded machine, at times handled after the
	// first tick (2.5-7.5 ms in), leaving nothing saved for SaveInterval, an hour (3 runs in 200).
	_, p, pid := spawnSaving(t, sys, store, time.Hour, 5*time.Millisecond, rec)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	poll.Until(t, 5*time.Second, func() bool { calls, _ := store.counts(); return calls == 1 }, "the first save")
	for range 10 {
		select {
		case <-p.ticks:
		case <-time.After(5 * time.Second):
			t.Fatal("no revalidation tick")
		}
	}
	p.view(t, sys, pid) // the ticks taken from the probe have been handled
	if calls, _ := store.counts(); calls != 1 {
		t.Fatalf("%d saves within SaveInterval, want 1", calls)
	}
}

// spawnSaving spawns on sys a routing actor that saves its peer store (in the test's directory) through store every
// save interval, with a revalidation tick every revalidate, its table holding start from its start; it returns the
// actor's config, its probe and its PID.
func spawnSaving(t *testing.T, sys *actor.ActorSystem, store *slowStore, save, revalidate time.Duration, start ...*messages.NodeRecord) (Config, *probe, *actor.PID) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.StorePath = filepath.Join(t.TempDir(), "peers.pb")
	cfg.SaveInterval, cfg.RevalidateInterval = save, revalidate
	props, err := NewActorProps(cfg, newEventNet())
	if err != nil {
		t.Fatal(err)
	}
	p := newProbe()
	p.save, p.start = store.save, start
	return cfg, p, sys.Root.Spawn(props.Clone(actor.WithReceiverMiddleware(p.middleware)))
}
