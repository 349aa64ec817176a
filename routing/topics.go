package routing

import (
	"crypto/sha256"
	"slices"
	"time"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// TopicKey is the point of the key space a topic's subscribers register on: SHA-256 of "actormesh-topic:" and
// the topic's name. The nodes closest to it keep the registrations, which lookups toward it collect.
func TopicKey(topic string) Key {
	return Key(sha256.Sum256([]byte("actormesh-topic:" + topic)))
}

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

// TopicRegistry keeps the nodes registered on topics (FindNode with topic and register), as a DHT keeps
// provider records: bounded in topics, in registrations per topic and per IP group within a topic, and in time.
// A topic over the bound evicts the topic registered on least recently; a registration over a topic's bound evicts
// that topic's oldest. A TopicRegistry is not safe for concurrent use.
type TopicRegistry struct {
	ttl                           time.Duration
	maxTopics, perTopic, perGroup int
	groupOf                       func(addr string) (ipGroup, bool)
	topics                        map[Key]*topicRegistrations
}

// newTopicRegistry returns an empty registry whose registrations last ttl; groupOf gives an address's IP group
// (the zero group is exempt from perGroup).
func newTopicRegistry(ttl time.Duration, maxTopics, perTopic, perGroup int, groupOf func(string) (ipGroup, bool)) *TopicRegistry {
	return &TopicRegistry{ttl: ttl, maxTopics: maxTopics, perTopic: perTopic, perGroup: perGroup, groupOf: groupOf,
		topics: make(map[Key]*topicRegistrations)}
}

// Register registers the node of e (a verified entry with its record) on topic until now + ttl, or renews its
// registration. It reports false when the registration is refused: an address with no IP group, or a topic
// holding perGroup registrations of e's IP group already (a renewal is never refused for that).
func (r *TopicRegistry) Register(topic Key, e Entry, now time.Time) bool {
	g, ok := r.groupOf(e.Addr)
	if !ok || e.Record == nil {
		return false
	}
	t := r.topics[topic]
	if t == nil {
		if len(r.topics) >= r.maxTopics {
			r.Expire(now)
		}
		if len(r.topics) >= r.maxTopics {
			r.evictTopic()
		}
		t = &topicRegistrations{}
		r.topics[topic] = t
	}
	reg := topicRegistration{id: e.ID, record: e.Record, group: g, expires: now.Add(r.ttl)}
	if i := slices.IndexFunc(t.regs, func(x topicRegistration) bool { return x.id == e.ID }); i >= 0 {
		t.regs = slices.Delete(t.regs, i, i+1)
	} else if g != (ipGroup{}) && r.countGroup(t, g) >= r.perGroup {
		return false
	}
	t.dropExpired(now)
	if len(t.regs) >= r.perTopic {
		t.regs = slices.Delete(t.regs, 0, 1)
	}
	t.regs = append(t.regs, reg)
	t.newest = now
	return true
}

func (r *TopicRegistry) countGroup(t *topicRegistrations, g ipGroup) int {
	n := 0
	for _, x := range t.regs {
		if x.group == g {
			n++
		}
	}
	return n
}

// evictTopic drops the topic registered on least recently.
func (r *TopicRegistry) evictTopic() {
	if k, ok := earliest(r.topics, func(t *topicRegistrations) time.Time { return t.newest }); ok {
		delete(r.topics, k)
	}
}

// dropExpired removes the registrations expired at now.
func (t *topicRegistrations) dropExpired(now time.Time) {
	t.regs = slices.DeleteFunc(t.regs, func(x topicRegistration) bool { return !now.Before(x.expires) })
}

// Expire drops the registrations, and the topics, expired at now.
func (r *TopicRegistry) Expire(now time.Time) {
	for k, t := range r.topics {
		t.dropExpired(now)
		if len(t.regs) == 0 {
			delete(r.topics, k)
		}
	}
}

// Registered returns the records of up to max nodes registered on topic and not expired at now, newest first,
// without the node except (the asker).
func (r *TopicRegistry) Registered(topic Key, now time.Time, max int, except session.NodeID) []*messages.NodeRecord {
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
func (r *TopicRegistry) Len() (topics, registrations int) {
	for _, t := range r.topics {
		registrations += len(t.regs)
	}
	return len(r.topics), registrations
}
