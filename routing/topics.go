package routing

import (
	"crypto/sha256"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// TopicKey is the point of the key space a topic's subscribers register on: SHA-256 of "actormesh-topic:" and
// the topic's name. The nodes closest to it keep the registrations, which lookups toward it collect.
func TopicKey(topic string) Key {
	return Key(sha256.Sum256([]byte("actormesh-topic:" + topic)))
}

// MaxRegisteredRecordSize is the largest encoded record a node registers on a topic: a record with a few
// addresses (an honest one with one address takes ~130 bytes). Registrants choose their records, and the
// registry's memory is bounded by this times its registrations.
const MaxRegisteredRecordSize = 512

// topicRegistration is one node registered on a topic.
type topicRegistration struct {
	id      session.NodeID
	record  *messages.NodeRecord
	group   ipGroup
	expires time.Time
}

// topicRegistrations are a topic's registrations, oldest first (a registration renewed moves to the end).
type topicRegistrations struct {
	regs   []topicRegistration
	newest time.Time // when the last registration came
}

// topicRegistry keeps the nodes registered on topics (FindNode with topic and register), as a DHT keeps
// provider records: bounded in topics, in registrations per topic, in record size and in time, and per IP group
// (of the connection a registration came over, not of the address the registrant claims): within a topic, and
// across all topics. A topic over the bound evicts, among the topics registered from the fewest IP groups, the one
// registered on least recently; a registration over a topic's bound evicts that topic's oldest. A topicRegistry is
// not safe for concurrent use.
type topicRegistry struct {
	ttl                           time.Duration
	maxTopics, perTopic, perGroup int
	// perGroupAll bounds one IP group's registrations over all topics (maxTopics/4): one registrant, or one
	// host's, cannot register on enough topics to evict all the others.
	perGroupAll int
	groupOf     func(addr string) (ipGroup, bool)
	topics      map[Key]*topicRegistrations
	groups      map[ipGroup]int // registrations held per IP group (the zero group, exempt, is not counted)
}

// newTopicRegistry returns an empty registry whose registrations last ttl; groupOf gives an address's IP group
// (the zero group is exempt from the group limits).
func newTopicRegistry(ttl time.Duration, maxTopics, perTopic, perGroup int, groupOf func(string) (ipGroup, bool)) *topicRegistry {
	return &topicRegistry{ttl: ttl, maxTopics: maxTopics, perTopic: perTopic, perGroup: perGroup,
		perGroupAll: max(1, maxTopics/4), groupOf: groupOf,
		topics: make(map[Key]*topicRegistrations), groups: make(map[ipGroup]int)}
}

// Register registers the node of e (a verified entry with its record) on topic until now + ttl, or renews its
// registration; from is the address of the connection the registration came over, which sets its IP group (e's
// own address when from is empty). It reports false when the registration is refused: a record over
// MaxRegisteredRecordSize, an address with no IP group, a topic holding perGroup registrations of that group
// already, or the group holding maxTopics/4 registrations over all topics. A renewal is checked as a new
// registration (its group may have changed), and a refused one leaves the registration as it was.
func (r *topicRegistry) Register(topic Key, e Entry, from string, now time.Time) bool {
	return r.register(topic, e, from, now) == ""
}

// register is Register, returning why it refused the registration ("" when it took it), for the logs.
func (r *topicRegistry) register(topic Key, e Entry, from string, now time.Time) (refused string) {
	if from == "" {
		from = e.Addr
	}
	g, ok := r.groupOf(from)
	switch {
	case !ok:
		return "no IP group for the registration's address"
	case e.Record == nil || proto.Size(e.Record) > MaxRegisteredRecordSize:
		return "record over MaxRegisteredRecordSize"
	}
	t := r.topics[topic]
	i := -1
	if t != nil {
		t.dropExpired(r, now)
		i = slices.IndexFunc(t.regs, func(x topicRegistration) bool { return x.id == e.ID })
	}
	if g != (ipGroup{}) {
		sameGroup := i >= 0 && t.regs[i].group == g // a renewal from the group it counts in already
		inTopic, all := 0, r.groups[g]
		if t != nil {
			inTopic = regsOfGroup(t.regs, g)
		}
		switch {
		case sameGroup:
		case all >= r.perGroupAll:
			return "the IP group of its connection holds the most registrations allowed over all topics"
		case inTopic >= r.perGroup:
			return "the IP group of its connection holds the most registrations allowed on the topic"
		}
	}
	if t == nil {
		if len(r.topics) >= r.maxTopics {
			r.Expire(now)
		}
		if len(r.topics) >= r.maxTopics && !r.evictTopic() {
			return "no room for another topic"
		}
		t = &topicRegistrations{}
		r.topics[topic] = t
	}
	if i >= 0 {
		r.drop(t, i)
	}
	if len(t.regs) >= r.perTopic {
		r.drop(t, 0)
	}
	t.regs = append(t.regs, topicRegistration{id: e.ID, record: e.Record, group: g, expires: now.Add(r.ttl)})
	if g != (ipGroup{}) {
		r.groups[g]++
	}
	t.newest = now
	return ""
}

// regsOfGroup counts the registrations of group g.
func regsOfGroup(regs []topicRegistration, g ipGroup) int {
	n := 0
	for _, x := range regs {
		if x.group == g {
			n++
		}
	}
	return n
}

// drop removes t's registration i.
func (r *topicRegistry) drop(t *topicRegistrations, i int) {
	r.uncount(t.regs[i].group)
	t.regs = slices.Delete(t.regs, i, i+1)
}

func (r *topicRegistry) uncount(g ipGroup) {
	if g == (ipGroup{}) {
		return
	}
	if r.groups[g]--; r.groups[g] <= 0 {
		delete(r.groups, g)
	}
}

// evictTopic makes room for a new topic: it drops, among the topics registered from the fewest IP groups, the one
// registered on least recently, and reports false only when there is none. Four IP groups, registering on made-up
// topics (maxTopics/4 each, the bound of a group over all topics), evicted every topic a registrar held, whichever
// the groups that held it (an audit's finding); now a topic of more groups goes only once those of fewer are gone.
// Refusing new topics once none was of one group (this stop's first version) let eight groups lock a registrar
// against every new topic (a review's finding).
func (r *topicRegistry) evictTopic() bool {
	var victim Key
	var at time.Time
	fewest := 0
	for k, t := range r.topics {
		n := groupsOf(t.regs)
		if fewest == 0 || n < fewest || (n == fewest && t.newest.Before(at)) {
			victim, at, fewest = k, t.newest, n
		}
	}
	if fewest == 0 {
		return false
	}
	for _, x := range r.topics[victim].regs {
		r.uncount(x.group)
	}
	delete(r.topics, victim)
	return true
}

// groupsOf counts the distinct IP groups of regs (at least 1 for a topic with no registration left, so that every
// topic can be chosen).
func groupsOf(regs []topicRegistration) int {
	var seen []ipGroup
	for _, x := range regs {
		if !slices.Contains(seen, x.group) {
			seen = append(seen, x.group)
		}
	}
	return max(1, len(seen))
}

// dropExpired removes the registrations expired at now.
func (t *topicRegistrations) dropExpired(r *topicRegistry, now time.Time) {
	t.regs = slices.DeleteFunc(t.regs, func(x topicRegistration) bool {
		if now.Before(x.expires) {
			return false
		}
		r.uncount(x.group)
		return true
	})
}

// Expire drops the registrations, and the topics, expired at now.
func (r *topicRegistry) Expire(now time.Time) {
	for k, t := range r.topics {
		t.dropExpired(r, now)
		if len(t.regs) == 0 {
			delete(r.topics, k)
		}
	}
}

// Registered returns the records of up to max nodes registered on topic and not expired at now, newest first,
// without the node except (the asker).
func (r *topicRegistry) Registered(topic Key, now time.Time, max int, except session.NodeID) []*messages.NodeRecord {
	t := r.topics[topic]
	if t == nil {
		return nil
	}
	var out []*messages.NodeRecord
	for i := len(t.regs) - 1; i >= 0 && len(out) < max; i-- {
		if x := t.regs[i]; x.id != except && now.Before(x.expires) {
			out = append(out, x.record)
		}
	}
	return out
}

// Len returns the number of topics and of registrations held, expired ones not yet dropped included.
func (r *topicRegistry) Len() (topics, registrations int) {
	for _, t := range r.topics {
		registrations += len(t.regs)
	}
	return len(r.topics), registrations
}
