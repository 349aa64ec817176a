package gossip

import (
	"slices"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
)

// The simulations of hostile nodes: a root that withholds messages, and single peers that try to turn the defence
// against it (treedistrust.go) against a sound root. Their behaviour is sim.forge's.

// TestSimulationNodesGiveUpARootThatDropsMessages turns the root of the relay's default tree hostile: it goes on
// reporting (so it stays the best root) but forwards no message and answers no IWANT. Every honest node still gets
// every later message once, first by IHAVE/IWANT (the root's subtrees no longer exchange messages over the tree:
// each message's p100 was 735-834 ms in seeds 1-6 without the defence), until the nodes see most messages come
// pulled, or cross over from the tree of those that left already, and give the root up (treedistrust.go; the
// nodes below the root's children leave their parent first). In seeds 1-8 the last message slower than 200 ms went
// out 1.7-2.8 s after the root turned hostile, 8.8 s in one (stop 26, which gave the root up at once: 1.4-1.7 s,
// 7.6-7.8 in two); then every honest node is in an honest root's tree, and only the hostile root was given up.
func TestSimulationNodesGiveUpARootThatDropsMessages(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		s, hostile := withholdingSim(t, seed, (*sim).treeRoot)
		for i, r := range s.nodes {
			if i == hostile {
				continue
			}
			ts := r.topics[simTopic].tree
			if ts.root == s.ids[hostile] {
				t.Errorf("seed %d: node %d still follows the hostile root", seed, i)
			}
			for id := range ts.distrusted {
				if id != s.ids[hostile] {
					t.Errorf("seed %d: node %d gave up root %d, an honest one", seed, i, s.index[id])
				}
			}
		}
		s.checkRecovered(seed, 125)
		t.Logf("seed %d, root hostile from message %d: %v; messages 125-199: %v", seed, withholdFrom,
			s.figures(withholdFrom, 50), s.figures(125, len(s.msgs)))
	}
}

// TestSimulationOnePeerCannotMakeNodesLeaveASoundRoot checks that the defence against a withholding root
// (treedistrust.go) cannot be turned against a sound one by a single hostile node that delivers messages ahead of
// the tree: one that reports a root its neighbours' root outranks and pushes every message to all its peers (so that
// they count crossings), or one that announces every message at once by IHAVE (so that they pull it from it). The
// evidence must come from distrustPeers distinct peers: no root is given up.
func TestSimulationOnePeerCannotMakeNodesLeaveASoundRoot(t *testing.T) {
	for _, flood := range []bool{true, false} {
		for seed := uint64(1); seed <= 2; seed++ {
			sc := relaySim(seed)
			sc.msgs = 100
			s := newSim(t, sc)
			s.run(sc.warmup)
			root := s.treeRoot()
			hostile := (root + 7) % sc.n
			var lesser session.NodeID
			lesser[0], lesser[31] = 0xff, 0xff // outranked by every node's id at the same rank
			s.forge = func(i int, out *Output) {
				if i != hostile {
					return
				}
				for _, snd := range out.Send {
					if c := snd.Control; c != nil && flood {
						for j := range c.Tree {
							c.Tree[j].Root, c.Tree[j].RootRank, c.Tree[j].Dist, c.Tree[j].Parent = lesser, 0, 1, session.NodeID{}
						}
					}
				}
				for _, m := range out.Deliver {
					for _, j := range s.adj[i] {
						if flood {
							out.Send = append(out.Send, Send{To: s.ids[j], Msg: m.relayed()})
						} else {
							out.Send = append(out.Send, Send{To: s.ids[j], Control: &Control{IHave: []IHave{{Topic: simTopic, IDs: []MsgID{m.ID}}}}})
						}
					}
				}
			}
			s.runAll()
			s.checkExactlyOnce(0)
			for i, r := range s.nodes {
				got, _, _, _ := r.TreeLinks(simTopic)
				if n := r.Stats().TreeDistrusted; n > 0 || (i != hostile && got != s.ids[root]) {
					t.Errorf("flood %v, seed %d: node %d gave a root up %d times, follows %d (root %d)", flood, seed, i, n, s.index[got], root)
				}
			}
			t.Logf("flood %v, seed %d: %v", flood, seed, s.figures(25, sc.msgs))
		}
	}
}

// TestSimulationAWithholdingParentIsLeftNotTheRoot turns hostile the interior node with the most descendants in the
// relay's default tree: it goes on reporting but forwards no message and answers no IWANT. Its children pull every
// message from their other peers; they must leave it (treedistrust.go, shunParent), not the sound root. Giving the
// root up for it made every node of the network leave the root, 58-178 times in seeds 1-4, with up to 3 duplicates
// per delivery while the trees changed. In seeds 1-8 now: no root given up in seven, two nodes in the eighth; the
// last message slower than 200 ms went out 2.6-6.4 s after the node turned hostile, 0.16-0.19 duplicates per delivery.
func TestSimulationAWithholdingParentIsLeftNotTheRoot(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		root := -1
		s, hostile := withholdingSim(t, seed, func(s *sim) int {
			root = s.treeRoot()
			return s.mostDescendants(root)
		})
		var distrusted, shunned uint64
		for i, r := range s.nodes {
			if i != hostile {
				distrusted += r.Stats().TreeDistrusted
				shunned += r.Stats().TreeShunned
			}
		}
		if distrusted > 2 || shunned == 0 {
			t.Errorf("seed %d: the sound root given up %d times, parents left %d times; want at most 2 and some", seed, distrusted, shunned)
		}
		s.checkRecovered(seed, withholdFrom)
		t.Logf("seed %d, node %d (of root %d's tree) hostile from message %d: %v", seed, hostile, root, withholdFrom,
			s.figures(withholdFrom, len(s.msgs)))
	}
}

// withholdFrom is the publication from which withholdingSim's hostile node withholds messages.
const withholdFrom = 25

// withholdingSim runs the relay's default tree over 200 nodes and 200 messages; from publication withholdFrom on, the
// node pick chooses then goes on reporting but forwards no message and answers no IWANT. It checks that every honest
// node got every later message once.
func withholdingSim(t *testing.T, seed uint64, pick func(*sim) int) (s *sim, hostile int) {
	t.Helper()
	sc := relaySim(seed)
	sc.msgs = 200
	s = newSim(t, sc)
	s.run(sc.warmup + withholdFrom*sc.interval - 1) // up to publication withholdFrom
	hostile = pick(s)
	s.hostile[hostile] = true
	s.forge = func(i int, out *Output) {
		if i == hostile {
			out.Send = slices.DeleteFunc(out.Send, func(snd Send) bool { return snd.Msg != nil })
		}
	}
	s.runAll()
	s.checkExactlyOnce(withholdFrom)
	return s, hostile
}

// checkRecovered checks that the messages 125 on (10 s after withholdFrom) reached every honest node within 200 ms,
// and that the messages from dupsFrom on cost at most 0.5 duplicates per delivery.
func (s *sim) checkRecovered(seed uint64, dupsFrom int) {
	s.t.Helper()
	for k, sm := range s.msgs[125:] {
		if d := slices.Max(sm.arrivals); d > 200*time.Millisecond {
			s.t.Errorf("seed %d: message %d, 10 s after a node turned hostile, took %v", seed, 125+k, d)
		}
	}
	if f := s.figures(dupsFrom, len(s.msgs)); f.dupPerDelivery > 0.5 {
		s.t.Errorf("seed %d: messages %d-%d: %v, want at most 0.5 duplicates per delivery", seed, dupsFrom, len(s.msgs)-1, f)
	}
}

// mostDescendants returns the node other than root with the most nodes below it in the tree.
func (s *sim) mostDescendants(root int) int {
	below := make([]int, len(s.nodes))
	for _, r := range s.nodes {
		_, parent, _, _ := r.TreeLinks(simTopic)
		for hops := 0; hops < len(s.nodes); hops++ {
			j, ok := s.index[parent]
			if !ok || j == root {
				break
			}
			below[j]++
			_, parent, _, _ = s.nodes[j].TreeLinks(simTopic)
		}
	}
	best := -1
	for i, n := range below {
		if i != root && (best < 0 || n > below[best]) {
			best = i
		}
	}
	return best
}
