package actors

import (
	"context"
	"testing"
)

// A request that waits for a topic lookup (one runs for the topic already) is merged with any other waiting for that
// topic (maxTopicDiscoveries' doc): a registration merged into a waiting search must stay a registration, or the
// node is not registered on the topic until the relay's next renewal, up to 3/2 TopicRegisterInterval later, while
// the relay believes it asked for one (discoverTopic's doc: "a dropped registration would have waited for the
// relay's next one, up to 15 minutes, and could lapse").
func TestARegistrationMergedIntoAWaitingSearchStaysARegistration(t *testing.T) {
	m := &peerManager{ctx: context.Background()}
	m.discovering = map[string]struct{}{"rare": {}} // a lookup of the topic runs
	m.topicsWaiting = map[string]*discoverTopic{}
	m.discoverTopic(&discoverTopic{topic: "rare", want: 3})        // a search waits
	m.discoverTopic(&discoverTopic{topic: "rare", register: true}) // then a registration
	w, ok := m.topicsWaiting["rare"]
	if !ok || !w.register || w.want != 3 {
		t.Fatalf("waiting request %+v (found %v), want one registration that still wants 3 peers", w, ok)
	}
}
