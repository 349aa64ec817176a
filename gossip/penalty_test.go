package gossip

import (
	"testing"
	"time"
)

// What a failed Router hands its successor of the peers' penalties: those of its peers and of the departed peers
// it retains, less the expired ones, the most recent first within MaxPeers; a peer added later takes its count back.
func TestPenaltiesCarriedToANewRouter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeers = 3
	old := newTestRouter(t, cfg)
	addPeers(t, old, topicA, 1, 3)
	for range 2 {
		old.PenalizePeer(nid(1))
	}
	old.PenalizePeer(nid(2))
	old.RemovePeer(t0, nid(2))                             // departed at t0, retained with 1
	old.clock(t0.Add(cfg.PenaltyRetention / 2))            // peer 1's count is carried as of now
	old.RemovePeer(t0.Add(cfg.PenaltyRetention/2), nid(3)) // no penalty: nothing retained
	carried := old.carryPenalties()
	if len(carried) != 2 || carried[0].id != nid(1) || carried[0].penalty != 2 || carried[1].id != nid(2) {
		t.Fatalf("carried %+v, want peer 1's 2 (now), then peer 2's 1 (departed)", carried)
	}

	// Half the retention later peer 2's count has expired, peer 1's has not.
	next := newTestRouter(t, cfg)
	next.inheritPenalties(carried, t0.Add(cfg.PenaltyRetention))
	addPeers(t, next, topicA, 1, 2)
	if p := next.PenalizePeer(nid(1)); p.Count != 3 || !p.Ban {
		t.Errorf("peer 1's next penalty %+v, want its third, a ban", p)
	}
	if p := next.PenalizePeer(nid(2)); p.Count != 1 {
		t.Errorf("peer 2's next penalty %+v, want a first: its count expired", p)
	}

	// Within MaxPeers the most recent are kept.
	var many []carriedPenalty
	for i := range 5 {
		many = append(many, carriedPenalty{id: nid(10 + i), penalty: 1, at: t0.Add(-time.Duration(i) * time.Second)})
	}
	capped := newTestRouter(t, cfg)
	capped.inheritPenalties(many, t0)
	if len(capped.retained) != cfg.MaxPeers {
		t.Fatalf("%d penalties retained, want MaxPeers (%d)", len(capped.retained), cfg.MaxPeers)
	}
	for i := range cfg.MaxPeers {
		if _, ok := capped.retained[nid(10+i)]; !ok {
			t.Errorf("penalty of peer %d (the %d-th most recent) not kept", 10+i, i+1)
		}
	}
}
