package adminapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
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

// Each error the node returns maps to the status OPERATOR.md gives it, wrapped as the node wraps it; a peer's
// address lookup that could not run or did not end is the lookup's status, not a 404. Those a test through a real
// node pins elsewhere are here too: this table is the whole mapping.
func TestStatusOfMapsEachErrorToItsDocumentedStatus(t *testing.T) {
	unknown := func(cause error) error { return fmt.Errorf("send: %w: %w", actors.ErrUnknownPeer, cause) }
	for _, c := range []struct {
		err  error
		want int
	}{
		{actors.ErrBadReply, 502},
		{fmt.Errorf("%w: %w", actors.ErrBadPayload, &actors.RemoteError{}), 502},
		{gossip.ErrEmptyTopic, 400},
		{gossip.ErrTopicTooLong, 400},
		{gossip.ErrTopicNotUTF8, 400},
		{gossip.ErrMessageTooLarge, 400},
		{actors.ErrMessageTooLarge, 400},
		{actors.ErrSelf, 400},
		{actors.ErrBadPayload, 400},
		{actors.ErrInvalidArgument, 400},
		{session.ErrBadPeerAddr, 400},
		{unknown(routing.ErrNoPeers), 503},
		{unknown(fmt.Errorf("%w: %w", actors.ErrNotFound, routing.ErrNoAnswer)), 503},
		{unknown(routing.ErrTooManyLookups), 503},
		{unknown(actors.ErrClosed), 503},
		{unknown(actors.ErrNotStarted), 503},
		{unknown(routing.ErrStopped), 503},
		{unknown(actors.ErrDiscoveryDisabled), 501},
		{unknown(actors.ErrRequestTimeout), 504},
		{unknown(context.DeadlineExceeded), 504},
		{unknown(actors.ErrNotFound), 404},
		{unknown(errors.New("another cause")), 404},
		{actors.ErrNotFound, 404},
		{actors.ErrUnknownProtocol, 404},
		{actors.ErrBanned, 403},
		{gossip.ErrNoPeers, 409},
		{gossip.ErrDuplicate, 409},
		{gossip.ErrLimit, 409},
		{gossip.ErrRejected, 422},
		{gossip.ErrIgnored, 422},
		{actors.ErrOverloaded, 503},
		{actors.ErrDiscoveryDisabled, 501},
		{actors.ErrRequestTimeout, 504},
		{context.DeadlineExceeded, 504},
		{actors.ErrRemote, 502},
		{actors.ErrPeerGone, 502},
		{actors.ErrSlowPeer, 502},
		{actors.ErrUnreachable, 502},
		{actors.ErrClosed, 503},
		{actors.ErrNotStarted, 503},
		{gossip.ErrRelayStopped, 503},
		{routing.ErrNoPeers, 503},
		{routing.ErrNoAnswer, 503},
		{routing.ErrTooManyLookups, 503},
		{routing.ErrRestarted, 503},
		{errors.New("a bug"), 500},
	} {
		if got := statusOf(fmt.Errorf("request: %w", c.err)); got != c.want {
			t.Errorf("%v: %d, want %d", c.err, got, c.want)
		}
	}
}
