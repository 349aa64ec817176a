package routing

// The routing actor's introductions: a liveness check, soon after it was learned second-hand, of a neighbour that
// may not know this node (docs/ARCHITECTURE.md, Discovery, Introductions).

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/actormesh/actormesh/session"
)

// learnedSecondHand notes that the table has just taken a node from another node's word: an introduction tick comes
// Config.IntroduceDelay to 3/2 of it later, unless one is due already. The jitter spreads the introductions of
// nodes that joined together (after an outage, or all of a simulation's), which would otherwise dial their
// neighbours in the same instant; it draws no shorter wait, as a younger table takes more nodes for neighbours
// than are (docs/ARCHITECTURE.md, Discovery, Introductions).
func (a *routingActor) learnedSecondHand() {
	if a.cfg.IntroduceDelay <= 0 || a.introTimer != nil || a.ctx.Err() != nil {
		return
	}
	self, root, tick := a.self, a.root, &introduceTick{from: a}
	a.introTimer = time.AfterFunc(introductionWait(a.rng, a.cfg.IntroduceDelay), func() { root.Send(self, tick) })
}

// introductionWait returns a wait drawn uniformly from [d, 3d/2].
func introductionWait(rng *rand.Rand, d time.Duration) time.Duration {
	d = min(d, math.MaxInt64/2) // 146 years, never: 3d/2 would overflow into a negative wait
	return d + time.Duration(rng.Int64N(int64(d/2)+1))
}

// introductions returns the entries this node introduces itself to at a tick, nearest to the node first, at most
// Table.K: its neighbours (Table.Neighbours) that have neither answered nor failed a check, that are not being
// checked nor found busy by a check. They know of this node only if they learned of it second-hand: a lookup of
// this node's has not asked them, nor have they asked this node.
func (a *routingActor) introductions() []Entry {
	k := a.cfg.Table.K
	var out []Entry
	for _, e := range a.table.Closest(a.table.SelfKey(), a.table.Len()) {
		if e.Answered() || e.Failures > 0 || a.passedOver(e.ID) || !a.table.Neighbours(e.ID, k) {
			continue
		}
		if out = append(out, e); len(out) == k {
			break
		}
	}
	return out
}

// introduce starts a tick's introductions (continueIntroductions): at most Table.K of them.
func (a *routingActor) introduce() {
	a.introTimer = nil
	a.introLeft = a.cfg.Table.K
	a.continueIntroductions()
}

// continueIntroductions starts the introductions due (introductions), nearest first, while fewer than
// Config.MaxIntroductions are in progress and the tick has some left to start; introductionEnded calls it again as
// each ends. A tick that starts Table.K of them, or finds MaxInFlight exchanges in progress, arms the next one for
// the others.
func (a *routingActor) continueIntroductions() {
	if a.introLeft == 0 {
		return
	}
	for _, e := range a.introductions() {
		if len(a.introducing) >= a.cfg.MaxIntroductions {
			return // the others as these end
		}
		if !a.checkEntry(e) {
			a.introLeft = 0
			a.learnedSecondHand()
			return
		}
		a.introducing[e.ID] = struct{}{}
		a.stats.Introductions++
		if a.introLeft--; a.introLeft == 0 {
			a.learnedSecondHand()
			return
		}
	}
	a.introLeft = 0 // none left due: this tick is over
}

// introductionEnded notes that the liveness check of peer has ended and reports whether it was an introduction,
// whose place the tick's others may now take (continueIntroductions).
func (a *routingActor) introductionEnded(peer session.NodeID) bool {
	if _, ok := a.introducing[peer]; !ok {
		return false
	}
	delete(a.introducing, peer)
	return true
}
