package gossip

import "time"

// maxSearchBackoff bounds the wait between two searches for a topic's registered nodes, in TopicSearchInterval.
const maxSearchBackoff = 32

// topicDiscovery is when a joined topic is next due for a registration and a search in the DHT.
type topicDiscovery struct {
	joinBeat    uint64        // the heartbeat count at the join
	registerDue time.Time     // zero: at once
	searchDue   time.Time     // zero: at once
	searchGap   time.Duration // the wait after the next search; zero: TopicSearchInterval
}

// discover asks the shell, on a heartbeat, to register the node on a joined topic that is sparse around it, and to
// look for more topic peers while it has fewer than Dlo (Config.TopicRegisterInterval, TopicSearchInterval). The
// first heartbeat after the join is skipped: the peers' subscriptions come in after the node's own.
func (r *Router) discover(b *builder, name string, t *topic, now time.Time) {
	d := &t.disc
	if r.beats < d.joinBeat+2 {
		return
	}
	peers := len(t.peers)
	short := peers < r.cfg.Dlo
	register := r.cfg.TopicRegisterInterval > 0 && (short || 2*peers < len(r.peers)) && !now.Before(d.registerDue)
	want := 0
	switch {
	case !short || r.cfg.TopicSearchInterval <= 0:
		d.searchGap, d.searchDue = 0, time.Time{}
	case !now.Before(d.searchDue):
		want = r.cfg.D - peers
		if d.searchGap == 0 {
			d.searchGap = r.cfg.TopicSearchInterval
		}
		d.searchDue = now.Add(d.searchGap)
		d.searchGap = min(2*d.searchGap, maxSearchBackoff*r.cfg.TopicSearchInterval)
	}
	if register {
		iv := r.cfg.TopicRegisterInterval
		d.registerDue = now.Add(iv/2 + time.Duration(r.rng.Int64N(int64(iv))))
	}
	if register || want > 0 {
		b.out.Discover = append(b.out.Discover, Discover{Topic: name, Register: register, Want: want})
	}
}
