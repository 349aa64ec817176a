package routing

import (
	"slices"

	"github.com/actormesh/actormesh/session"
)

// registeredTally collects what a topic lookup's answers name as registered on the topic, and picks the nodes to
// report by who named them: the nodes closest to the topic's key hold its registrations (a node registers through a
// lookup of the key), so each answerer that names a node adds 1/(r+1) to its score, r its rank by closeness to the
// key (0 for the closest); only the maxTallyAnswers answerers closest to the key count. Until stop 52 the lookup
// kept the first 256 registrations in the order they came and counted every answer alike: four hostile nodes
// anywhere on the lookup's path, answering with the same made-up registrations before the registrars near the key,
// pushed the honest members out of the result (an audit's finding). Ranking by the closest answerer alone (this
// stop's first version) let one node whose id was ground near the key hide every member (a review's finding): with
// these weights what the answerers of ranks 2 to 15 name (1.88) outranks what the closest two name (1.5), and an
// attacker needs three of the closest ids. Scores are kept in integer units of 1/lcm(1..16), exact, so that equal
// scores are equal and their order is the shuffle's. Pure: the lookup actor feeds it.
type registeredTally struct {
	target  Key
	answers []tallyAnswer // the closest answerers first, at most maxTallyAnswers
}

type tallyAnswer struct {
	key  Key
	regs []Entry
}

// maxTallyAnswers is how many answerers, the closest to the topic's key, a registered node can be counted from;
// scoreUnit, the least common multiple of 1 to maxTallyAnswers, makes every weight 1/(r+1) a whole number of units
// (summed in float64, equal scores rounded apart, and their order was the rounding's, not the shuffle's: a review's
// finding).
const (
	maxTallyAnswers = 16
	scoreUnit       = 720720
)

func newRegisteredTally(target Key) *registeredTally { return &registeredTally{target: target} }

// add records the registrations an answerer of key named (verified, each node once).
func (t *registeredTally) add(key Key, regs []Entry) {
	i, _ := slices.BinarySearchFunc(t.answers, key, func(a tallyAnswer, k Key) int { return DistCmp(t.target, a.key, k) })
	if i >= maxTallyAnswers {
		return
	}
	t.answers = slices.Insert(t.answers, i, tallyAnswer{key: key, regs: regs})
	if len(t.answers) > maxTallyAnswers {
		t.answers = t.answers[:maxTallyAnswers]
	}
}

// best returns at most n registered nodes, the highest scores first (random order among equal ones), each with the
// newest record the answers gave for it.
func (t *registeredTally) best(n int, shuffle func(n int, swap func(i, j int))) []Entry {
	type tallied struct {
		e     Entry
		score uint64 // the sum of 1/(r+1) over the ranks r of the answerers that named it, in scoreUnit units
	}
	byID := make(map[session.NodeID]*tallied)
	var all []*tallied
	for rank, a := range t.answers {
		weight := uint64(scoreUnit / (rank + 1))
		for _, e := range a.regs {
			c := byID[e.ID]
			if c == nil {
				c = &tallied{e: e}
				byID[e.ID] = c
				all = append(all, c)
			} else if e.Record.GetSeq() > c.e.Record.GetSeq() {
				c.e = e
			}
			c.score += weight
		}
	}
	shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	slices.SortStableFunc(all, func(a, b *tallied) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return 0
	})
	out := make([]Entry, 0, min(n, len(all)))
	for _, c := range all[:min(n, len(all))] {
		out = append(out, c.e)
	}
	return out
}
