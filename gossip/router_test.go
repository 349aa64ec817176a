package gossip

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := map[string]func(*Config){
		"D zero":                    func(c *Config) { c.D = 0 },
		"Dlo above D":               func(c *Config) { c.Dlo = c.D + 1 },
		"Dhi below D":               func(c *Config) { c.Dhi = c.D - 1 },
		"negative Dlazy":            func(c *Config) { c.Dlazy = -1 },
		"no heartbeat":              func(c *Config) { c.HeartbeatInterval = 0 },
		"no seen TTL":               func(c *Config) { c.SeenTTL = 0 },
		"history too short":         func(c *Config) { c.HistoryLength = c.HistoryGossip },
		"no mesh gossip":            func(c *Config) { c.MeshGossipBeats = 0 },
		"mesh gossip too slow":      func(c *Config) { c.MeshGossipBeats = c.HistoryLength },
		"gossip delay too long":     func(c *Config) { c.GossipDelay = 10 * time.Second },
		"no seen max":               func(c *Config) { c.SeenMax = 0 },
		"no prune duplicates":       func(c *Config) { c.PruneDuplicates = 0 },
		"no penalty threshold":      func(c *Config) { c.PenaltyThreshold = 0 },
		"per-peer IWANTs above all": func(c *Config) { c.MaxPendingIWantPerPeer = c.MaxPendingIWant + 1 },
		"no per-peer IWANTs":        func(c *Config) { c.MaxPendingIWantPerPeer = 0 },
		"no clock skew":             func(c *Config) { c.MaxClockSkew = 0 },
		"clock skew beyond seen":    func(c *Config) { c.MaxClockSkew = c.SeenTTL / 2 },
		// 2 x MaxClockSkew overflowed and passed; every message was then dropped as stale
		"clock skew of never": func(c *Config) { c.MaxClockSkew = math.MaxInt64 },
		// the tree's periods (16x, 4x) overflowed
		"huge tree stale beats":     func(c *Config) { c.TreeStaleBeats = 1 << 60 },
		"nanosecond heartbeat":      func(c *Config) { c.HeartbeatInterval, c.GossipDelay = time.Nanosecond, 0 },
		"sub-millisecond heartbeat": func(c *Config) { c.HeartbeatInterval, c.GossipDelay = time.Millisecond-1, 0 },
		// the ids fall due to be announced only as they leave the cache
		"gossip delay at the bound": func(c *Config) {
			c.GossipDelay = time.Duration(c.HistoryLength-c.HistoryGossip-c.MeshGossipBeats+1) * c.HeartbeatInterval
		},
		"one-hop tree shortcut":     func(c *Config) { c.Tree, c.TreeShortcutDist = true, 1 },
		"no topic length":           func(c *Config) { c.MaxTopicLength = 0 },
		"IHAVEs peers refuse":       func(c *Config) { c.MaxIHaveLength = messages.MaxGossipRPCIDs + 1 },
		"no pending bytes":          func(c *Config) { c.MaxPendingValidationBytes = 0 },
		"no per-peer pending bytes": func(c *Config) { c.MaxPendingValidationBytesPerPeer = 0 },
		// a decided message's id must still be seen when its verdict comes
		"validation outlasting seen": func(c *Config) { c.ValidationTimeout = c.SeenTTL },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			mutate(&cfg)
			if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate = %v, want ErrInvalidConfig", err)
			}
			if _, err := NewRouter(cfg, nil); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewRouter = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestPublishNoPeers(t *testing.T) {
	r := newTestRouter(t, DefaultConfig())
	r.Join(t0, topicA)
	for _, topic := range []string{topicA, "never-heard-of"} {
		out, err := r.Publish(t0, &Message{Topic: topic, Data: []byte("x")})
		if !errors.Is(err, ErrNoPeers) {
			t.Errorf("Publish on %q = %v, want ErrNoPeers", topic, err)
		}
		if len(out.Send)+len(out.Deliver) != 0 {
			t.Errorf("Publish on %q failed but output %+v", topic, out)
		}
	}
	addPeers(t, r, topicA, 1, 1)
	if _, err := r.Publish(t0, msg("x")); err != nil {
		t.Fatalf("Publish with a peer: %v", err)
	}
	if _, err := r.Publish(t0, msg("x")); !errors.Is(err, ErrDuplicate) {
		t.Errorf("second Publish of the same payload = %v, want ErrDuplicate", err)
	}
	if st := r.Stats(); st.Published != 1 || st.Delivered != 1 {
		t.Errorf("stats %+v, want 1 published and delivered", st)
	}
}

func TestPublishMeshAndFanout(t *testing.T) {
	cfg := DefaultConfig()
	r := joined(t, cfg, 10)
	eager, lazy := r.MeshPeers(topicA)
	if len(eager) != cfg.D || len(lazy) != 0 {
		t.Fatalf("after Join: %d eager, %d lazy mesh links, want %d eager", len(eager), len(lazy), cfg.D)
	}
	m := msg("hello")
	out, err := r.Publish(t0, m)
	if err != nil {
		t.Fatal(err)
	}
	if got := receivers(out); !slices.Equal(got, eager) {
		t.Errorf("published to %v, want the eager mesh %v", got, eager)
	}
	if out.Send[0].Msg.Hops != 1 || m.Hops != 0 || m.ID != DefaultMsgID(m) {
		t.Errorf("sent hops %d, local hops %d, id %v: want 1, 0, DefaultMsgID", out.Send[0].Msg.Hops, m.Hops, m.ID)
	}
	if len(out.Deliver) != 1 || out.Deliver[0] != m {
		t.Errorf("delivered %v, want the published message", out.Deliver)
	}

	// A topic not joined: fanout to D random topic peers, no local delivery.
	addPeers(t, r, "other", 20, 39)
	out, err = r.Publish(t0, &Message{Topic: "other", Data: []byte("fan")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(receivers(out)); n != cfg.D || len(out.Deliver) != 0 {
		t.Errorf("fanout to %d peers with %d deliveries, want %d and 0", n, len(out.Deliver), cfg.D)
	}
}

func TestHandleMessageRelaysOnce(t *testing.T) {
	r := joined(t, DefaultConfig(), 4)
	m := msg("m")
	m.Hops = 3
	out, st := r.HandleMessage(t0, nid(1), m)
	if st != Pending || len(out.Send) != 0 || len(out.Deliver) != 0 {
		t.Fatalf("HandleMessage = %v with %+v, want pending and no output before the verdict", st, out)
	}
	out = r.Validated(t0, m.ID, Accept)
	if got, want := sorted(receivers(out)), []session.NodeID{nid(2), nid(3), nid(4)}; !slices.Equal(got, want) {
		t.Errorf("relayed to %v, want the mesh but the sender %v", got, want)
	}
	if h := out.Send[0].Msg.Hops; h != 4 {
		t.Errorf("relayed with %d hops, want 4", h)
	}
	if len(out.Deliver) != 1 || out.Deliver[0] != m {
		t.Errorf("delivered %v, want the message once", out.Deliver)
	}
	out, st = r.HandleMessage(t0, nid(2), msg("m"))
	if st != Duplicate || len(out.Deliver) != 0 || len(receivers(out)) != 0 {
		t.Errorf("second copy: %v with %+v, want a duplicate, neither delivered nor relayed", st, out)
	}
	if st := r.Stats(); st.Delivered != 1 || st.Duplicates != 1 {
		t.Errorf("stats %+v, want 1 delivered and 1 duplicate", st)
	}
	if out, st := r.HandleMessage(t0, nid(99), msg("stranger")); st != Dropped || len(out.Send) != 0 {
		t.Errorf("message from an unknown peer: %v, want dropped", st)
	}
}

// The heartbeat names the peers that delivered an accepted message first since the heartbeat before (the shell's
// eviction keeps them): not the one whose copy was a duplicate, nor the one whose message was rejected, nor one
// that delivered its own publication (anyone can publish: a sybil earned the protection so), and each only once.
func TestHeartbeatNamesThePeersThatRelayedFirst(t *testing.T) {
	r := joined(t, DefaultConfig(), 5)
	receive(t, r, t0, nid(3), msg("m1"), Accept)
	receive(t, r, t0, nid(1), msg("m1"), Accept) // a duplicate
	receive(t, r, t0, nid(2), msg("m2"), Accept)
	receive(t, r, t0, nid(4), msg("bad"), Reject)
	own := msg("own")
	own.Origin = nid(5)
	receive(t, r, t0, nid(5), own, Accept)
	now := t0.Add(time.Second)
	if got, want := r.Heartbeat(now).Relayed, sorted([]session.NodeID{nid(2), nid(3)}); !slices.Equal(got, want) {
		t.Fatalf("Relayed = %v, want %v", got, want)
	}
	if got := r.Heartbeat(now.Add(time.Second)).Relayed; len(got) != 0 {
		t.Fatalf("Relayed of a heartbeat with nothing received = %v, want none", got)
	}
}

// TestMessageIDIsComputedOnce: the shell asks for a received message's id (to skip verifying what it has seen);
// HandleMessage then takes that id rather than hashing the payload again, and still hashes a message whose id it
// was not asked for (a forged ID field counts for nothing).
func TestMessageIDIsComputedOnce(t *testing.T) {
	cfg := DefaultConfig()
	calls := 0
	cfg.MsgID = func(m *Message) MsgID {
		calls++
		return DefaultMsgID(m)
	}
	r := joined(t, cfg, 2)
	m := msg("m")
	id := r.MessageID(m)
	if m.ID != id || calls != 1 {
		t.Fatalf("MessageID: m.ID %x, id %x, %d calls", m.ID[:4], id[:4], calls)
	}
	if _, st := r.HandleMessage(t0, nid(1), m); st != Pending || m.ID != id || calls != 1 {
		t.Fatalf("HandleMessage after MessageID: %v, id %x, %d calls of MsgID, want pending, the same id, 1 call", st, m.ID[:4], calls)
	}
	forged := msg("n")
	forged.ID = id
	if _, st := r.HandleMessage(t0, nid(2), forged); st != Pending || forged.ID != DefaultMsgID(forged) || calls != 2 {
		t.Fatalf("a message with a forged id: %v, id %x, %d calls, want it pending under its own id", st, forged.ID[:4], calls)
	}
}

func TestDuplicateOverEagerLinkPrunes(t *testing.T) {
	for _, pd := range []int{1, 3} {
		t.Run(fmt.Sprintf("PruneDuplicates=%d", pd), func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.PruneDuplicates = pd
			r := joined(t, cfg, 3)
			for k := range pd {
				receive(t, r, t0, nid(1), msg(fmt.Sprint(k)), Accept)
				out, st := r.HandleMessage(t0, nid(2), msg(fmt.Sprint(k)))
				c, _ := sendsTo(out, nid(2))
				pruned := c != nil && slices.Equal(c.Prune, []Prune{{Topic: topicA, Lazy: true}})
				if st != Duplicate || pruned != (k == pd-1) {
					t.Fatalf("duplicate %d: status %v, lazy prune sent %v, want it on duplicate %d", k+1, st, pruned, pd)
				}
			}
			eager, lazy := r.MeshPeers(topicA)
			if !slices.Equal(sorted(eager), []session.NodeID{nid(1), nid(3)}) || !slices.Equal(lazy, []session.NodeID{nid(2)}) {
				t.Errorf("mesh eager %v lazy %v, want peer 2 lazy and still in the mesh", eager, lazy)
			}
			// Each lazy prune sent counts in Stats().PrunesSent (exported as gossip_events_total{event="prunes_sent"}).
			if got := r.Stats().PrunesSent; got != 1 {
				t.Errorf("PrunesSent %d after one lazy prune, want 1", got)
			}
			// A lazy link no longer carries messages.
			out, _ := receive(t, r, t0, nid(1), msg("after"), Accept)
			if got := receivers(out); !slices.Equal(got, []session.NodeID{nid(3)}) {
				t.Errorf("relayed to %v, want only the remaining eager link", got)
			}
			// A peer still pushing over the link it was told is lazy gets the prune again, counted again.
			out, _ = r.HandleMessage(t0, nid(2), msg("after"))
			if c, _ := sendsTo(out, nid(2)); c == nil || !slices.Equal(c.Prune, []Prune{{Topic: topicA, Lazy: true}}) {
				t.Errorf("push over the lazy link: control %+v, want the lazy prune again", c)
			}
			if got := r.Stats().PrunesSent; got != 2 {
				t.Errorf("PrunesSent %d after the prune repeated over the lazy link, want 2", got)
			}
		})
	}
	t.Run("first copy resets the count", func(t *testing.T) {
		r := joined(t, DefaultConfig(), 3)
		for k := range 5 {
			first := nid(1 + k%2) // peers 1 and 2 take turns delivering first
			receive(t, r, t0, first, msg(fmt.Sprint(k)), Accept)
			r.HandleMessage(t0, nid(2-k%2), msg(fmt.Sprint(k)))
		}
		if eager, _ := r.MeshPeers(topicA); len(eager) != 3 {
			t.Errorf("eager links %v, want all three: no link pushed 3 duplicates in a row", eager)
		}
	})
	t.Run("last eager link is kept", func(t *testing.T) {
		cfg := DefaultConfig()
		cfg.PruneDuplicates = 1
		r := joined(t, cfg, 1)
		addPeers(t, r, topicA, 2, 2)                // a topic peer outside the mesh
		receive(t, r, t0, nid(2), msg("m"), Accept) // first copy by fanout
		out, _ := r.HandleMessage(t0, nid(1), msg("m"))
		if c, _ := sendsTo(out, nid(1)); c != nil {
			t.Errorf("pruned the only eager link: %+v", c)
		}
	})
}

func TestHeartbeatMeshDegree(t *testing.T) {
	cfg := DefaultConfig()
	t.Run("below Dlo", func(t *testing.T) {
		r := joined(t, cfg, 20)
		eager, _ := r.MeshPeers(topicA)
		gone := eager[:cfg.D-cfg.Dlo+1] // leaves Dlo-1 links
		for _, id := range gone {
			r.HandlePrune(t0, id, Prune{Topic: topicA})
		}
		out := r.Heartbeat(t0.Add(time.Second))
		eager, _ = r.MeshPeers(topicA)
		if len(eager) != cfg.D {
			t.Fatalf("mesh of %d after the heartbeat, want D = %d", len(eager), cfg.D)
		}
		grafts := 0
		for _, s := range out.Send {
			if s.Control != nil && len(s.Control.Graft) > 0 {
				grafts++
				if slices.Contains(gone, s.To) {
					t.Errorf("grafted %s during its backoff", s.To.Short())
				}
			}
		}
		if grafts != cfg.D-cfg.Dlo+1 {
			t.Errorf("%d grafts, want %d", grafts, cfg.D-cfg.Dlo+1)
		}
	})
	t.Run("above Dhi", func(t *testing.T) {
		r := joined(t, cfg, cfg.D)
		addPeers(t, r, topicA, cfg.D+1, 20)
		for i := cfg.D + 1; i <= 20; i++ {
			r.HandleGraft(t0, nid(i), topicA)
		}
		// Make two links lazy: those are pruned first.
		for _, id := range []session.NodeID{nid(1), nid(2)} {
			r.HandlePrune(t0, id, Prune{Topic: topicA, Lazy: true})
		}
		out := r.Heartbeat(t0.Add(time.Second))
		eager, lazy := r.MeshPeers(topicA)
		if len(eager)+len(lazy) != cfg.D || len(lazy) != 0 {
			t.Fatalf("mesh of %d eager and %d lazy after the heartbeat, want D = %d eager", len(eager), len(lazy), cfg.D)
		}
		var pruned []session.NodeID
		for _, s := range out.Send {
			if s.Control != nil && len(s.Control.Prune) > 0 {
				pruned = append(pruned, s.To)
			}
		}
		if len(pruned) != 20-cfg.D || !slices.Contains(pruned, nid(1)) || !slices.Contains(pruned, nid(2)) {
			t.Errorf("pruned %d peers, want %d, the lazy links 1 and 2 among them", len(pruned), 20-cfg.D)
		}
	})
}

func TestHeartbeatAnnounces(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dlazy, cfg.Dlo = 2, 2 // no grafts in this test
	r := joined(t, cfg, 2)
	addPeers(t, r, topicA, 3, 6) // outside the mesh
	r.HandlePrune(t0, nid(2), Prune{Topic: topicA, Lazy: true})
	m := msg("m")
	receive(t, r, t0, nid(1), m, Accept)

	if out := r.Heartbeat(t0.Add(cfg.GossipDelay - time.Millisecond)); len(out.Send) != 0 {
		t.Errorf("announced before GossipDelay: %+v", out.Send)
	}
	out := r.Heartbeat(t0.Add(cfg.GossipDelay))
	var to []session.NodeID
	for _, s := range out.Send {
		if s.Control == nil || len(s.Control.IHave) != 1 || !slices.Equal(s.Control.IHave[0].IDs, []MsgID{m.ID}) {
			t.Fatalf("heartbeat sent %+v, want IHAVEs of m", s)
		}
		to = append(to, s.To)
	}
	if len(to) != 1+cfg.Dlazy || to[0] != nid(2) || slices.Contains(to, nid(1)) {
		t.Errorf("announced to %v, want the lazy link 2 and %d peers outside the mesh, not the sender 1", to, cfg.Dlazy)
	}
	if out := r.Heartbeat(t0.Add(2 * time.Second)); len(out.Send) != 0 {
		t.Errorf("announced again after HistoryGossip = 1 heartbeat: %+v", out.Send)
	}
}

// TestQuietGossipTakesTurnsOnTheMeshLinks checks MeshGossipBeats: while nobody near the node repairs, each lazy mesh
// link hears IHAVE every other heartbeat, the links taking turns, and each hears of each id once; the random peers
// outside the mesh hear at the first heartbeat only; once the node has answered an IWANT, every link hears at every
// heartbeat.
func TestQuietGossipTakesTurnsOnTheMeshLinks(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MeshGossipBeats, cfg.Dlazy = 2, 3
	r := joined(t, cfg, cfg.D+3) // a mesh of D, 3 others
	var sender session.NodeID
	var lazy, others []session.NodeID
	for _, l := range r.topics[topicA].mesh {
		if sender.IsZero() {
			sender = l.id
		} else {
			lazy = append(lazy, l.id)
		}
	}
	for i := 1; i <= cfg.D+3; i++ {
		if r.topics[topicA].meshIndex(nid(i)) < 0 {
			others = append(others, nid(i))
		}
	}
	for _, id := range lazy {
		r.HandlePrune(t0, id, Prune{Topic: topicA, Lazy: true})
	}
	now := t0
	beat := func() Output { now = now.Add(cfg.HeartbeatInterval); return r.Heartbeat(now) }
	for range cfg.HistoryLength - 1 {
		beat() // the node just started: it counts as repairing until HistoryLength heartbeats have passed
	}
	heard := func(m *Message, from session.NodeID, beats int) map[session.NodeID][]int {
		h := map[session.NodeID][]int{}
		receive(t, r, now.Add(-cfg.GossipDelay), from, m, Accept)
		for k := range beats {
			for _, s := range beat().Send {
				if s.Control != nil && len(s.Control.IHave) == 1 && slices.Contains(s.Control.IHave[0].IDs, m.ID) {
					h[s.To] = append(h[s.To], k)
				}
			}
		}
		return h
	}

	h := heard(msg("still active"), sender, 1) // the HistoryLength-th heartbeat
	for _, id := range lazy {
		if at := h[id]; !slices.Equal(at, []int{0}) {
			t.Errorf("at heartbeat HistoryLength, lazy link %x heard at heartbeats %v, want the first", id[0], at)
		}
	}

	m := msg("quiet")
	h = heard(m, sender, 3)
	var first, second []session.NodeID
	for _, id := range lazy {
		switch at := h[id]; {
		case slices.Equal(at, []int{0}):
			first = append(first, id)
		case slices.Equal(at, []int{1}):
			second = append(second, id)
		default:
			t.Errorf("lazy link %x heard of the message at heartbeats %v, want once, at the first or second", id[0], at)
		}
	}
	if len(first) == 0 || len(second) == 0 {
		t.Errorf("the lazy links heard all at once (first %d, second %d), want them taking turns", len(first), len(second))
	}
	for _, id := range others {
		if at := h[id]; !slices.Equal(at, []int{0}) {
			t.Errorf("peer %x outside the mesh heard at heartbeats %v, want only the first", id[0], at)
		}
	}

	// Answering an IWANT shows a repair nearby: every link hears at every heartbeat again.
	if out := r.HandleIWant(now, others[0], []MsgID{m.ID}); len(receivers(out)) != 1 {
		t.Fatalf("IWANT not answered: %+v", out.Send)
	}
	h = heard(msg("active"), sender, 2)
	for _, id := range lazy {
		if at := h[id]; !slices.Equal(at, []int{0}) {
			t.Errorf("after a repair, lazy link %x heard at heartbeats %v, want the first only", id[0], at)
		}
	}

	// So does pulling a message, once the gossip went quiet again.
	for range cfg.HistoryLength + 1 {
		beat()
	}
	pulled := msg("pulled")
	pulled.ID = DefaultMsgID(pulled)
	r.HandleIHave(now, others[1], IHave{Topic: topicA, IDs: []MsgID{pulled.ID}})
	h = heard(pulled, others[1], 2)
	for _, id := range lazy {
		if at := h[id]; !slices.Equal(at, []int{0}) {
			t.Errorf("after a pull, lazy link %x heard at heartbeats %v, want the first only", id[0], at)
		}
	}
}

func TestSeenCacheBounds(t *testing.T) {
	s := newSeenCache(3, time.Minute)
	for k := range 4 {
		s.add(MsgID{byte(k)}, t0.Add(time.Duration(k)*time.Second))
	}
	if s.len() != 3 || s.has(MsgID{0}) || !s.has(MsgID{3}) {
		t.Errorf("count bound: len %d, has oldest %v", s.len(), s.has(MsgID{0}))
	}
	s.expire(t0.Add(time.Minute + 2*time.Second))
	if s.len() != 1 || !s.has(MsgID{3}) {
		t.Errorf("time bound: len %d, want only the newest id", s.len())
	}
	// A forgotten id added again stays until its new entry expires, and forgotten entries count towards 2*max.
	s.forget(MsgID{3})
	s.add(MsgID{3}, t0.Add(2*time.Minute))
	s.expire(t0.Add(2*time.Minute + 3*time.Second))
	if !s.has(MsgID{3}) {
		t.Error("the old entry of a forgotten id removed it when it was added again")
	}
	for k := range 10 {
		s.add(MsgID{9, byte(k)}, t0.Add(2*time.Minute))
		s.forget(MsgID{9, byte(k)})
	}
	if s.order.len() > 2*s.max {
		t.Errorf("%d entries for %d ids: forgotten ones are not bounded", s.order.len(), s.len())
	}

	// Through the router: a message is a duplicate until SeenTTL has passed.
	cfg := DefaultConfig()
	r := joined(t, cfg, 2)
	receive(t, r, t0, nid(1), msg("m"), Accept)
	r.Heartbeat(t0.Add(cfg.SeenTTL - time.Second))
	if _, st := r.HandleMessage(t0.Add(cfg.SeenTTL-time.Second), nid(2), msg("m")); st != Duplicate {
		t.Errorf("before SeenTTL: %v, want duplicate", st)
	}
	r.Heartbeat(t0.Add(cfg.SeenTTL))
	if _, st := r.HandleMessage(t0.Add(cfg.SeenTTL), nid(2), msg("m")); st != Dropped || r.Stats().Stale != 1 {
		t.Errorf("after SeenTTL, a copy published at t0: %v (%d stale), want dropped as stale", st, r.Stats().Stale)
	}
	// The same content published again (content ids: the same id) is a new message.
	again := msg("m")
	again.OriginTime = t0.Add(cfg.SeenTTL).UnixNano()
	if _, st := r.HandleMessage(t0.Add(cfg.SeenTTL), nid(2), again); st != Pending {
		t.Errorf("after SeenTTL, the same content published again: %v, want new", st)
	}
}

func TestMessageCacheBounds(t *testing.T) {
	c := newMsgCache(3, 1000)
	add := func(k, size int, beat uint64) {
		m := &Message{Data: make([]byte, size)}
		m.ID = MsgID{byte(k)}
		c.add(&cached{msg: m, beat: beat})
	}
	for k := range 4 {
		add(k, 10, 0)
	}
	if c.order.len() != 3 || c.get(MsgID{0}) != nil {
		t.Errorf("count bound: %d cached, oldest kept %v", c.order.len(), c.get(MsgID{0}) != nil)
	}
	add(9, 700, 1) // 828 bytes with its overhead: two of the 138-byte messages go
	if c.order.len() != 2 || c.bytes != 966 || c.get(MsgID{2}) != nil {
		t.Errorf("byte bound: %d cached, %d bytes", c.order.len(), c.bytes)
	}
	add(10, 5000, 1) // larger than the cache
	if c.get(MsgID{10}) != nil {
		t.Error("cached a message larger than the byte bound")
	}
	c.expire(5, 4)
	if c.order.len() != 0 || c.bytes != 0 {
		t.Errorf("history bound: %d cached, %d bytes", c.order.len(), c.bytes)
	}
	add(11, 1000-128, 5) // the byte bound exactly
	if c.get(MsgID{11}) == nil || c.bytes != 1000 {
		t.Errorf("a message of the byte bound: cached %v, %d bytes", c.get(MsgID{11}) != nil, c.bytes)
	}
}

func TestQueue(t *testing.T) {
	var q queue[int]
	for round := range 3 {
		for i := range 200 {
			q.push(i)
		}
		for i := range 200 {
			if v := q.pop(); v != i {
				t.Fatalf("round %d: pop %d, want %d", round, v, i)
			}
		}
	}
	if q.len() != 0 || len(q.buf) > 64 {
		t.Errorf("empty queue holds %d slots", len(q.buf))
	}
}

func TestPeersAndTopics(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPeers, cfg.MaxPeerTopics = 2, 1
	r := newTestRouter(t, cfg)
	if err := r.PeerSubscribed(nid(1), topicA); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("PeerSubscribed of an unknown peer = %v, want ErrUnknownPeer", err)
	}
	addPeers(t, r, topicA, 1, 2)
	if err := r.AddPeer(nid(3)); !errors.Is(err, ErrLimit) {
		t.Errorf("AddPeer beyond MaxPeers = %v, want ErrLimit", err)
	}
	if err := r.PeerSubscribed(nid(1), "b"); !errors.Is(err, ErrLimit) {
		t.Errorf("PeerSubscribed beyond MaxPeerTopics = %v, want ErrLimit", err)
	}
	r.Join(t0, topicA)
	r.RemovePeer(t0, nid(1))
	r.PeerUnsubscribed(t0, nid(2), topicA)
	if eager, lazy := r.MeshPeers(topicA); len(eager)+len(lazy) != 0 {
		t.Errorf("mesh %v %v, want empty after the peers left", eager, lazy)
	}
	if _, err := r.Publish(t0, msg("x")); !errors.Is(err, ErrNoPeers) {
		t.Errorf("Publish = %v, want ErrNoPeers", err)
	}
}

func TestLeave(t *testing.T) {
	r := joined(t, DefaultConfig(), 3)
	out := r.Leave(t0, topicA)
	if len(out.Send) != 3 {
		t.Fatalf("Leave sent %d controls, want a prune to each of the 3 mesh peers", len(out.Send))
	}
	for _, s := range out.Send {
		if !slices.Equal(s.Control.Prune, []Prune{{Topic: topicA}}) {
			t.Errorf("Leave sent %+v, want a full prune", s.Control)
		}
	}
	if _, st := r.HandleMessage(t0, nid(1), msg("m")); st != Dropped {
		t.Errorf("message on a topic left: %v, want dropped", st)
	}
}

func BenchmarkHandleMessage(b *testing.B) {
	r := joined(b, DefaultConfig(), 12)
	from := nid(1)
	data := make([]byte, 1024)
	b.ReportAllocs()
	k := uint64(0)
	for b.Loop() {
		k++
		d := append([]byte(nil), data...)
		d[0], d[1], d[2], d[3] = byte(k), byte(k>>8), byte(k>>16), byte(k>>24)
		m := &Message{Topic: topicA, Data: d}
		if _, st := r.HandleMessage(t0, from, m); st != Pending {
			b.Fatalf("status %v", st)
		}
		r.Validated(t0, m.ID, Accept)
		r.HandleMessage(t0, nid(2), &Message{Topic: topicA, Data: d}) // a duplicate
	}
}

// A restarted relay's Router starts from the ids its predecessor saw (carrySeen, inheritSeen), less those awaiting
// a verdict, which the predecessor never delivered, and those expired.
func TestInheritedSeenIDs(t *testing.T) {
	cfg := DefaultConfig()
	old := joined(t, cfg, 4)
	accepted, waiting := msg("accepted"), msg("waiting")
	old.HandleMessage(t0, nid(1), accepted)
	old.Validated(t0, accepted.ID, Accept)
	if _, st := old.HandleMessage(t0, nid(1), waiting); st != Pending {
		t.Fatalf("waiting: %v, want pending", st)
	}

	next := joined(t, cfg, 4)
	next.inheritSeen(old.carrySeen(), t0.Add(time.Second))
	if !next.Seen(accepted.ID) || next.Seen(waiting.ID) {
		t.Fatalf("after inheriting: accepted seen %v, waiting seen %v; want true and false",
			next.Seen(accepted.ID), next.Seen(waiting.ID))
	}
	if _, st := next.HandleMessage(t0.Add(time.Second), nid(2), msg("accepted")); st != Duplicate {
		t.Errorf("the accepted message again: %v, want a duplicate", st)
	}
	late := joined(t, cfg, 4)
	late.inheritSeen(old.carrySeen(), t0.Add(cfg.SeenTTL))
	if late.Seen(accepted.ID) {
		t.Error("an id past SeenTTL was inherited")
	}
}

// An IHAVE announces at most MaxIHaveLength ids: the others due wait for the next heartbeat.
func TestAnIHaveAnnouncesAtMostMaxIHaveLengthIDs(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxIHaveLength = 2
	r := joined(t, cfg, 2)
	r.HandlePrune(t0, nid(2), Prune{Topic: topicA, Lazy: true})
	for _, data := range []string{"a", "b", "c"} {
		receive(t, r, t0, nid(1), msg(data), Accept)
	}
	for k, want := range []int{2, 1} {
		c, _ := sendsTo(r.Heartbeat(t0.Add(time.Duration(k+1)*cfg.HeartbeatInterval)), nid(2))
		if c == nil || len(c.IHave) != 1 || len(c.IHave[0].IDs) != want {
			t.Errorf("heartbeat %d: IHAVE to the lazy link %+v, want %d ids", k, c, want)
		}
	}
}
