package gossip

import (
	"testing"
	"time"
)

func discoverConfig() Config {
	cfg := DefaultConfig()
	cfg.TopicRegisterInterval, cfg.TopicSearchInterval = 10*time.Minute, 10*time.Second
	return cfg
}

// discoverAt runs the heartbeat at now and returns its Discover for topicA, if any.
func discoverAt(r *Router, now time.Time) (Discover, bool) {
	for _, d := range r.Heartbeat(now).Discover {
		if d.Topic == topicA {
			return d, true
		}
	}
	return Discover{}, false
}

// A node alone in its topic registers on it and searches for D peers from TopicSearchInterval after the join, the
// searches spaced by a wait that doubles up to 32 search intervals.
func TestHeartbeatAsksToRegisterAndSearchForATopicWithoutPeers(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	addPeers(t, r, "other", 1, 8)
	r.Join(t0, topicA)
	for s := 1; s < 10; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("%d s after the join: %+v, want nothing before TopicSearchInterval", s, d)
		}
	}
	if d, ok := discoverAt(r, t0.Add(10*time.Second)); !ok || !d.Register || d.Want != r.cfg.D {
		t.Fatalf("TopicSearchInterval after the join: %+v %v, want a registration and a search for D = %d peers", d, ok, r.cfg.D)
	}
	searches := []time.Duration{10 * time.Second}
	for s := 11; s <= 3600; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok && d.Want > 0 {
			if d.Want != r.cfg.D {
				t.Fatalf("a search for %d peers, want D = %d", d.Want, r.cfg.D)
			}
			searches = append(searches, time.Duration(s)*time.Second)
		}
	}
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		320 * time.Second, 640 * time.Second, 960 * time.Second}
	for i, w := range want {
		if i >= len(searches) || searches[i] != w {
			t.Fatalf("searches at %v, want them to start at %v", searches, want)
		}
	}
	for i := len(want); i < len(searches); i++ {
		if gap := searches[i] - searches[i-1]; gap != 32*r.cfg.TopicSearchInterval {
			t.Fatalf("searches at %v: a gap of %v, want at most 32 search intervals", searches, gap)
		}
	}
}

// Registrations come every TopicRegisterInterval on average (each wait drawn from [1/2, 3/2] of it) while the
// topic is sparse around the node, each with one more peer to connect to while it has fewer than Dhi topic peers
// (so that islands of members join up).
func TestRegistrationsAreRenewedWhileTheTopicIsSparse(t *testing.T) {
	cfg := discoverConfig()
	r := newTestRouter(t, cfg)
	addPeers(t, r, topicA, 1, 4)   // Dlo topic peers: no search
	addPeers(t, r, "other", 5, 12) // but only a third of the node's peers
	r.Join(t0, topicA)
	var regs []time.Time
	for s := 1; s <= 6*3600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if d, ok := discoverAt(r, now); ok {
			if d.Want != 1 || !d.Register {
				t.Fatalf("at %v: %+v, want a registration and one more peer (the node has Dlo topic peers, fewer than Dhi)", now.Sub(t0), d)
			}
			regs = append(regs, now)
		}
	}
	if len(regs) < 2 {
		t.Fatalf("%d registrations in 6 hours", len(regs))
	}
	var sum time.Duration
	for i := 1; i < len(regs); i++ {
		gap := regs[i].Sub(regs[i-1])
		if gap < cfg.TopicRegisterInterval/2 || gap > cfg.TopicRegisterInterval*3/2+time.Second {
			t.Fatalf("a registration %v after the one before, want within [1/2, 3/2] of %v", gap, cfg.TopicRegisterInterval)
		}
		sum += gap
	}
	if mean := sum / time.Duration(len(regs)-1); mean < cfg.TopicRegisterInterval*3/4 || mean > cfg.TopicRegisterInterval*5/4 {
		t.Fatalf("registrations every %v on average, want about %v", mean, cfg.TopicRegisterInterval)
	}
}

// A topic shared by most of the node's peers is found by connecting to anybody: no registration, no search.
func TestDenseTopicCostsNoDiscovery(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	addPeers(t, r, topicA, 1, 8)
	addPeers(t, r, "other", 9, 12)
	r.Join(t0, topicA)
	for s := 1; s <= 3600; s++ {
		if d, ok := discoverAt(r, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("at %ds: %+v, want no discovery for a topic 8 of 12 peers share", s, d)
		}
	}
}

// Searches start over at TopicSearchInterval once the topic had Dlo peers; and with both intervals 0 (the
// Router's default) nothing is asked.
func TestSearchBackoffStartsOverAndDiscoveryCanBeOff(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	r.Join(t0, topicA)
	for s := 2; s <= 200; s++ {
		discoverAt(r, t0.Add(time.Duration(s)*time.Second)) // searches at 10, 20, 40, 80, 160 s: the next at 320 s
	}
	addPeers(t, r, topicA, 1, 4)
	if d, ok := discoverAt(r, t0.Add(201*time.Second)); ok && d.Want > 0 {
		t.Fatalf("with Dlo peers: %+v, want no search", d)
	}
	r.RemovePeer(t0.Add(202*time.Second), nid(1))
	if d, ok := discoverAt(r, t0.Add(202*time.Second)); !ok || d.Want != r.cfg.D-3 {
		t.Fatalf("a peer short of Dlo again: %+v %v, want a search at once for %d", d, ok, r.cfg.D-3)
	}
	if d, ok := discoverAt(r, t0.Add(212*time.Second)); !ok || d.Want == 0 {
		t.Fatalf("10 s later: %+v %v, want the next search after TopicSearchInterval", d, ok)
	}

	off := newTestRouter(t, DefaultConfig())
	off.Join(t0, topicA)
	for s := 1; s <= 100; s++ {
		if d, ok := discoverAt(off, t0.Add(time.Duration(s)*time.Second)); ok {
			t.Fatalf("the Router's default config asked for %+v", d)
		}
	}
	bad := DefaultConfig()
	bad.TopicSearchInterval = -time.Second
	if err := bad.Validate(); err == nil {
		t.Fatal("a negative TopicSearchInterval passed Validate")
	}
}

// A node with Dhi topic peers in a topic that is still sparse around it registers and asks for no peer more.
func TestRegistrationWithDhiPeersAsksForNoMore(t *testing.T) {
	r := newTestRouter(t, discoverConfig())
	addPeers(t, r, topicA, 1, r.cfg.Dhi)
	addPeers(t, r, "other", r.cfg.Dhi+1, 3*r.cfg.Dhi)
	r.Join(t0, topicA)
	d, ok := discoverAt(r, t0.Add(10*time.Second))
	if !ok || !d.Register || d.Want != 0 {
		t.Fatalf("%+v %v, want a registration only", d, ok)
	}
}
