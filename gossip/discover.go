package gossip

import (
	"math"
	"time"
)

// maxSearchBackoff bounds the wait between two searches for a topic's registered nodes, in TopicSearchInterval.
const maxSearchBackoff = 32

// topicDiscovery is when a joined topic is next due for a registration and a search in the DHT.
type topicDiscovery struct {
	from        time.Time     // TopicSearchInterval after the join: nothing is asked before
	registerDue time.Time     // zero: at once
	searchDue   time.Time     // zero: at once
	searchGap   time.Duration // the wait after the next search; zero: TopicSearchInterval
	retryGap    time.Duration // the wait before retrying a registration that failed; zero: TopicSearchInterval
	// peersChanged is when a peer last joined or left the topic (the Router's clock): nothing is asked until the
	// topic's peers have been quiet for TopicSearchInterval, or for maxUnquietWaits of them since unquietSince,
	// when discovery first waited for that.
	peersChanged time.Time
	unquietSince time.Time
}

// maxUnquietWaits bounds, in TopicSearchInterval, how long the changes of a topic's peers postpone its discovery: a
// peer that leaves and joins the topic every few seconds would otherwise keep the node from ever registering or
// searching, alone in the topic but for that peer.
const maxUnquietWaits = 12

// discover asks the shell, on a heartbeat, to register the node on a joined topic that is sparse around it, and to
// look for more topic peers while it has fewer than Dlo (Config.TopicRegisterInterval, TopicSearchInterval).
// Nothing is asked while the node is still making its first connections (SetJoining), nor until
// TopicSearchInterval after the join, nor while the topic's peers changed within TopicSearchInterval (a peer
// joined or left it; for maxUnquietWaits intervals at most): nodes that join a network and a topic together (a node sim's, or a network restarting) find
// the topic's peers among their ordinary connections as those come up and announce their topics, and their
// registrations and searches then would only add lookups and connections. At N = 1000, where the joins take a
// minute, the wait after the join alone let most nodes search while their peers' subscriptions were still on the
// way, and the load of those lookups tipped the network over. Peers that come or go without the topic do not count:
// a sparse topic's member, whose other connections keep changing as the network forms, waited seconds more.
func (r *Router) discover(b *builder, name string, t *topic, now time.Time) {
	d := &t.disc
	peers := len(t.peers)
	short := peers < r.cfg.Dlo
	if !short || r.cfg.TopicSearchInterval <= 0 {
		d.searchGap, d.searchDue = 0, time.Time{} // the next time it falls short, the searches start over
	}
	if r.joining || now.Before(d.from) {
		return
	}
	if now.Sub(d.peersChanged) < r.cfg.TopicSearchInterval {
		if d.unquietSince.IsZero() {
			d.unquietSince = now
		}
		if now.Sub(d.unquietSince) < maxUnquietWaits*r.cfg.TopicSearchInterval {
			return
		}
	}
	d.unquietSince = time.Time{}
	register := r.cfg.TopicRegisterInterval > 0 && (short || 2*peers < len(r.peers)) && !now.Before(d.registerDue)
	want := 0
	switch {
	case !short || r.cfg.TopicSearchInterval <= 0:
	case !now.Before(d.searchDue):
		want = r.cfg.D - peers
		if d.searchGap == 0 {
			d.searchGap = r.cfg.TopicSearchInterval
		}
		d.searchDue = now.Add(d.searchGap)
		d.searchGap = min(2*d.searchGap, maxSearchBackoff*r.cfg.TopicSearchInterval)
	}
	if register && !short && peers < r.cfg.Dhi {
		// One more peer from the registrations on each renewal: members that found each other in groups at the
		// start (each search sees only what was registered before it) would otherwise stay islands for good, once
		// each had Dlo peers.
		want = 1
	}
	if register {
		iv := min(r.cfg.TopicRegisterInterval, math.MaxInt64/2) // 146 years, never: 3iv/2 would overflow
		d.registerDue = now.Add(iv/2 + time.Duration(r.rng.Int64N(int64(iv))))
	}
	if register {
		r.stats.TopicRegistrations++
	}
	if want > 0 {
		r.stats.TopicSearches++
	}
	if register || want > 0 {
		b.out.Discover = append(b.out.Discover, Discover{Topic: name, Register: register, Want: want})
	}
}

// SetJoining tells the Router whether the node is still making its first connections (Network.Joining). Topic
// discovery waits until it is not: in a topic most nodes share, those connections bring the topic's peers, and a
// node that searched and registered meanwhile, short of peers only because it had few connections yet, would add
// lookups and connections. At N = 1000, where the joins take a minute, 700-1220 such registrations and 1600-2800
// searches a run went to the few nodes nearest the topic's key, and the nodes came out of the setup with 9.2-9.9
// kept outbound connections each, against 8.1-8.6 with this rule.
func (r *Router) SetJoining(joining bool) { r.joining = joining }

// TopicLookupDone tells the Router how a lookup it asked for (Output.Discover) ended; err is nil once it
// succeeded. A registration that failed (the node knew no peer yet, or its lookups were all taken) is retried
// TopicSearchInterval later, the wait doubling up to 32 times that while they fail, instead of at the next
// renewal, up to 3/2 TopicRegisterInterval later: until then the topic's other nodes cannot find this one. A
// search that failed needs nothing: searches go on while the topic is short of peers.
func (r *Router) TopicLookupDone(now time.Time, name string, register bool, err error) {
	now = r.clock(now)
	if err != nil {
		r.stats.TopicLookupsFailed++
	}
	t := r.topics[name]
	if t == nil || !t.joined || !register {
		return
	}
	d := &t.disc
	if err == nil {
		d.retryGap = 0
		return
	}
	base := r.cfg.TopicSearchInterval
	if base <= 0 {
		base = r.cfg.HeartbeatInterval
	}
	gap := max(d.retryGap, base)
	if due := now.Add(gap); due.Before(d.registerDue) {
		d.registerDue = due
	}
	d.retryGap = min(2*gap, maxSearchBackoff*base)
}
