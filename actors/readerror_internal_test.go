package actors

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// A connection's read error names the reason it is closed with: a message over the node's limit (a peer that
// ignored the limit told in the handshake: an honest one refuses to send it, see
// TestMessageOverThePeersLimitFailsAndKeepsTheConnection) is MESSAGE_TOO_LARGE, a bad frame PROTOCOL_ERROR.
func TestClassifyReadError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want messages.DisconnectReason
	}{
		{fmt.Errorf("session: read: %w: 2097152 bytes, limit 1048576", session.ErrMessageTooLarge), messages.DisconnectReason_DISCONNECT_REASON_MESSAGE_TOO_LARGE},
		{fmt.Errorf("%w: tag mismatch", session.ErrBadFrame), messages.DisconnectReason_DISCONNECT_REASON_PROTOCOL_ERROR},
		{fmt.Errorf("session: read: %w", os.ErrDeadlineExceeded), messages.DisconnectReason_DISCONNECT_REASON_IDLE_TIMEOUT},
		{errors.New("connection reset by peer"), messages.DisconnectReason_DISCONNECT_REASON_READ_ERROR},
	} {
		if got, _ := classifyReadError(tc.err); got != tc.want {
			t.Errorf("classifyReadError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A request added to a connection after its requests were failed (it was unregistered between the caller's
// connFor and add) fails at once with the same error: it waited out its timeout (an audit's suspicion).
func TestARequestOnAFailedConnectionFailsAtOnce(t *testing.T) {
	table, pc := newRequestTable(), &peerConn{}
	gone := fmt.Errorf("%w: test", ErrPeerGone)
	table.failConn(pc, gone)
	id, ch := table.add(pc, false)
	defer table.remove(id, pc)
	select {
	case r := <-ch:
		if !errors.Is(r.err, ErrPeerGone) {
			t.Fatalf("got %v, want ErrPeerGone", r.err)
		}
	default:
		t.Fatal("a request added after failConn is waiting for an answer that cannot come")
	}
}
