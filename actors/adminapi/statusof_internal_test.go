package adminapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
)

// A lookup ended by the routing actor's failure or stop, or its lookup actor's, is the node's trouble: 503, for a
// lookup of the API's own and for a send whose lookup it ended. They were 500 (which OPERATOR.md calls a bug) and
// 404 ("not found through the DHT") (a docs audit's finding).
func TestLookupsEndedByTheRoutingActorAre503(t *testing.T) {
	for _, cause := range []error{routing.ErrRestarted, routing.ErrStopped, routing.ErrLookupActorStopped} {
		if got := statusOf(fmt.Errorf("lookup: %w", cause)); got != http.StatusServiceUnavailable {
			t.Errorf("a lookup ended by %v: %d, want 503", cause, got)
		}
		send := fmt.Errorf("send: %w: %w", actors.ErrUnknownPeer, cause)
		if got := statusOf(send); got != http.StatusServiceUnavailable {
			t.Errorf("a send whose lookup %v ended: %d, want 503", cause, got)
		}
	}
}

// A message stream of a new topic while the node is in MaxPeerTopics topics is the node's state refusing it: 409,
// as OPERATOR.md says (it was 500, which OPERATOR.md calls a bug).
func TestASubscriptionPastMaxPeerTopicsIs409(t *testing.T) {
	err := fmt.Errorf("subscribe: subscribe to %q: %w: the node is in 64 topics already", "t", gossip.ErrLimit)
	if got := statusOf(err); got != http.StatusConflict {
		t.Errorf("%v: %d, want 409", err, got)
	}
}
