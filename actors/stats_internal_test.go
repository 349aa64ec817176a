package actors

import (
	"errors"
	"slices"
	"testing"

	"github.com/actormesh/actormesh/session"
)

// Every label handshakeFailureReason gives is one Stats fills in from the start.
func TestHandshakeFailureReasonsAreListed(t *testing.T) {
	for _, err := range []error{session.ErrHandshakeTimeout, session.ErrWrongPeer, session.ErrNetworkMismatch,
		session.ErrVersionMismatch, session.ErrBadSignature, session.ErrHandshake, errors.New("other")} {
		if r := handshakeFailureReason(err); !slices.Contains(handshakeFailureLabels[:], r) {
			t.Errorf("handshakeFailureReason(%v) = %q, not in handshakeFailureLabels", err, r)
		}
	}
}
