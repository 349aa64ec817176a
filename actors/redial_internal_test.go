package actors

import (
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// A failed dial lets go only the bootstrapper's candidate that was never reached (the bootstrapper picks another);
// one reached before (up), and the application's peers, stay wanted and are redialed with their backoff.
func TestOnlyAnUntriedCandidateIsLetGoAfterAFailedDial(t *testing.T) {
	m := newBarePeerManager()
	defer m.cancel()
	untried, reached, app := session.NodeID{1}, session.NodeID{2}, session.NodeID{3}
	m.wanted[untried] = &wantedPeer{auto: true}
	m.wanted[reached] = &wantedPeer{auto: true, up: true}
	m.wanted[app] = &wantedPeer{}
	for id, want := range map[session.NodeID]bool{untried: true, reached: false, app: false} {
		if got := m.untriedCandidateFailed(id); got != want {
			t.Errorf("peer %v: let go %v, want %v", id.Short(), got, want)
		}
		if _, still := m.wanted[id]; still == want {
			t.Errorf("peer %v: still wanted %v after the failed dial, want %v", id.Short(), still, !want)
		}
	}
}

// A wanted peer whose redial attempts are spent is given up: no longer wanted, so that nothing waits for it (it
// stayed in wanted, without a timer, for good).
func TestAPeerWhoseRedialsAreSpentIsGivenUp(t *testing.T) {
	m := newBarePeerManager()
	defer m.cancel()
	id := session.NodeID{4}
	b := session.NewBackoff(time.Second, time.Minute, 1, nil)
	if _, ok := b.Next(); !ok { // the one attempt, spent
		t.Fatal("no first attempt")
	}
	m.wanted[id] = &wantedPeer{backoff: b}
	m.scheduleRedial(id, nil)
	if w, ok := m.wanted[id]; ok {
		t.Fatalf("a peer with no redial attempt left is still wanted (timer %v)", w.timer != nil)
	}
}
