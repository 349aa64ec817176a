package actors

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// shutdown starts closing the connection with a reason; only the first reason counts. A write in progress is
// given closeFlushTimeout to finish on a graceful close, and abortWriteGrace otherwise.
func (pc *peerConn) shutdown(reason messages.DisconnectReason, detail string) {
	pc.begin(reason, detail, false)
}

// closeDuplicate is shutdown with DUPLICATE_CONNECTION, for a connection another to the same peer replaces or
// that comes up beside one (peerManager.retire). awaitPeer marks the losing one of a simultaneous dial (the two in
// opposite directions; peerManager.awaitingPeer): the peer is up and may have sent on it before it learned of
// the tie-break, so the close waits for the peer's goodbye longer (peerConn.awaitPeer). A connection replaced by
// one in the same direction was given up by the peer (it may have restarted): its close waits closeFlushTimeout,
// as another's.
func (pc *peerConn) closeDuplicate(detail string, awaitPeer bool) {
	pc.begin(messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION, detail, awaitPeer)
}

// begin is shutdown; awaitPeer is peerConn.awaitPeer's value if this is the first reason.
func (pc *peerConn) begin(reason messages.DisconnectReason, detail string, awaitPeer bool) {
	pc.closeOnce.Do(func() {
		pc.deadlineMu.Lock()
		defer pc.deadlineMu.Unlock()
		pc.reason, pc.detail, pc.awaitPeer = reason, detail, awaitPeer
		close(pc.closing)
		if reason != messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION {
			pc.stopDelivery()
		}
		if gracefulClose(reason) {
			_ = pc.sc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		} else {
			_ = pc.sc.SetWriteDeadline(time.Now().Add(abortWriteGrace))
		}
	})
	pc.q.stop()
}

// closedAsDuplicate tells whether the connection is closing as a duplicate (DUPLICATE_CONNECTION, said by either
// side): another connection to the peer replaced it, or won a simultaneous dial's tie-break.
func (pc *peerConn) closedAsDuplicate() bool {
	return pc.isClosing() && pc.reason == messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION
}

// isClosing tells whether shutdown has begun: the connection says goodbye and takes nothing more.
func (pc *peerConn) isClosing() bool {
	select {
	case <-pc.closing:
		return true
	default:
		return false
	}
}

// abortWriteGrace is how long a write in progress may go on once the connection is dropped for cause (a ban, a
// protocol error, a full queue): a peer that reads gets the rest of the frame and then the Disconnect notice
// with the reason, where a write cut at once would end the stream mid-frame, leaving the peer a read error
// (it did in 5 of 20 runs of TestBanMidWriteStillTellsThePeerWhy); a peer that does not read is cut off after it.
const abortWriteGrace = 200 * time.Millisecond

// gracefulClose tells whether a close flushes what is queued before saying goodbye.
func gracefulClose(reason messages.DisconnectReason) bool {
	switch reason {
	case messages.DisconnectReason_DISCONNECT_REASON_REQUESTED, messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN,
		messages.DisconnectReason_DISCONNECT_REASON_NOT_NEEDED, messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION,
		messages.DisconnectReason_DISCONNECT_REASON_TOO_MANY_PEERS: // an evicted connection flushes its queue
		return true
	}
	return false
}

// knownReason is a peer's disconnect reason and detail, with a reason this build does not know (a newer peer's, or
// one made up) as UNSPECIFIED, its number in the detail: counted by its number, made-up reasons took the labels of
// Stats.Disconnects (and its metric) for good, and the node's own reasons were then counted as "other" (an audit's
// finding).
func knownReason(reason messages.DisconnectReason, detail string) (messages.DisconnectReason, string) {
	if _, ok := messages.DisconnectReason_name[int32(reason)]; ok {
		return reason, detail
	}
	return messages.DisconnectReason_DISCONNECT_REASON_UNSPECIFIED, clipText(fmt.Sprintf("reason %d: %s", int32(reason), detail), maxErrorText)
}

// remoteShutdown records that the peer said goodbye; nothing more is written to it, but for the messages queued
// already when the peer closed it as a duplicate: the peer reads on until this side closes too (see stopDelivery),
// and they would otherwise be lost, since Send took them.
func (pc *peerConn) remoteShutdown(reason messages.DisconnectReason, detail string) {
	pc.closeOnce.Do(func() {
		pc.deadlineMu.Lock()
		defer pc.deadlineMu.Unlock()
		pc.reason, pc.detail, pc.byRemote = reason, detail, true
		close(pc.closing)
		if reason == messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION {
			_ = pc.sc.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
		} else {
			_ = pc.sc.SetWriteDeadline(time.Unix(1, 0))
		}
	})
	pc.stopDelivery()
	pc.q.stop()
}

// goodbyeGrace is how long a writer whose write failed waits for the reader to find why: a peer that closed
// gracefully sent its reason first, and that reason is the one to record, not the broken pipe.
const goodbyeGrace = time.Second

// awaitGoodbye waits, after a write error other than a timeout, until the connection is closing (the reader read
// the peer's goodbye or hit the closed socket) or goodbyeGrace has passed.
func (pc *peerConn) awaitGoodbye(err error) {
	if timedOut(err) {
		return
	}
	t := time.NewTimer(goodbyeGrace)
	defer t.Stop()
	select {
	case <-pc.closing:
	case <-t.C:
	}
}

// finish flushes what a graceful close allows, tells the peer why, and closes the socket. Exactly one writer calls
// it, and it counts as the writer's exit.
func (pc *peerConn) finish(canWrite bool) {
	defer pc.exit()
	pc.stopPings()
	left := pc.q.close()
	flushed := pc.flushedToRemote()
	if !canWrite || (pc.byRemote && !flushed) || !gracefulClose(pc.reason) {
		pc.dropped += len(left)
		left = nil
	}
	left = pc.dropOversized(batch{items: left}).items
	if canWrite && (!pc.byRemote || flushed) {
		out := left
		switch {
		case pc.byRemote: // the peer said goodbye: no goodbye back
		case pc.reason == messages.DisconnectReason_DISCONNECT_REASON_READ_ERROR,
			pc.reason == messages.DisconnectReason_DISCONNECT_REASON_WRITE_ERROR:
		default:
			if b, err := proto.Marshal(disconnectEnvelope(pc.reason, pc.detail)); err == nil {
				out = append(out, b)
			}
		}
		if pc.write(out, closeFlushTimeout) == nil {
			pc.linger()
		} else {
			pc.dropped += len(left) // the flush failed: what it carried was not written, or not all of it
		}
	}
	pc.stopDelivery()
	_ = pc.sc.Close()
}

// linger half-closes the connection once the goodbye is written and gives the reader up to closeFlushTimeout to
// drain what the peer still sends (to deliver it, on a close as a duplicate: see halt), until the peer closes its
// side (it does on reading the goodbye). A TCP socket closed with unread data resets the connection, and the reset
// drops what was not yet sent, the goodbye included: the peer would record a reset instead of the reason.
// Connections without a half-close are closed at once (the in-memory transport has one since stop 52).
//
// The losing connection of a simultaneous dial this node closed (awaitPeer) lingers up to duplicateLinger: what
// the peer sent on it before its goodbye or half-close is delivered. At 1 s, a peer stalled longer (a loaded
// machine) had its messages, written after the node closed the socket or left unread in it, lost without a count
// on either side, every Send having returned nil. Once delivery stops (the node stops: connActor), the linger ends
// within closeFlushTimeout of its start, as another's.
func (pc *peerConn) linger() {
	if pc.sc.CloseWrite() != nil {
		return
	}
	start, bound := time.Now(), closeFlushTimeout
	if pc.awaitPeer {
		bound = pc.duplicateLinger()
	}
	_ = pc.sc.SetReadDeadline(start.Add(bound))
	t := time.NewTimer(bound)
	defer t.Stop()
	halt := pc.halt
	for {
		select {
		case <-pc.readerDone:
			if pc.awaitPeer && !pc.peerEnded && !pc.halted() { // its read deadline passed, or the socket failed
				pc.warnCutShort(time.Since(start))
			}
			return
		case <-halt:
			halt = nil
			if bound > closeFlushTimeout {
				bound = closeFlushTimeout
				t.Reset(max(0, closeFlushTimeout-time.Since(start)))
			}
		case <-t.C:
			if pc.awaitPeer && !pc.halted() {
				pc.warnCutShort(bound)
			}
			return
		}
	}
}

// warnCutShort reports that the losing connection of a simultaneous dial closed before the peer said goodbye or
// half-closed it: what the peer sent on it afterwards, its Sends having returned nil, is lost. It is counted
// (Stats.DuplicatesCutShort) once the connection is done: it was only logged. Writer only.
func (pc *peerConn) warnCutShort(waited time.Duration) {
	pc.cutShort = true
	pc.log.Warn().Str("peer", pc.id.Short()).Dur("waited", waited).
		Msg("connection closed as a duplicate before the peer finished with it: what the peer still sent on it is lost")
}

// duplicateLinger bounds the wait for the peer's goodbye on the losing connection of a simultaneous dial this node
// closed: IdleTimeout (how long a live peer may stay silent), at least closeFlushTimeout. An honest peer answers
// the goodbye as soon as it reads it, once it has flushed its queue.
func (pc *peerConn) duplicateLinger() time.Duration {
	return max(closeFlushTimeout, pc.cfg.IdleTimeout)
}

// goodbyeError is ErrPeerGone for a connection the peer closed with a goodbye, which tells its reason and detail (a
// full peer's TOO_MANY_PEERS, an idle close, its shutdown): the peer was up to say it (routingNetwork).
type goodbyeError struct {
	peer   string
	reason messages.DisconnectReason
	detail string
}

func (e *goodbyeError) Error() string {
	return fmt.Sprintf("%v: %s closed the connection: %s: %s", ErrPeerGone, e.peer, e.reason, e.detail)
}

// Is makes a goodbyeError match ErrPeerGone.
func (e *goodbyeError) Is(target error) bool { return target == ErrPeerGone }

// goneError is the error of an operation that the connection's close failed: a goodbyeError once the peer said
// goodbye on it, ErrPeerGone otherwise.
func (pc *peerConn) goneError() error {
	if pc.isClosing() && pc.byRemote { // reason, detail and byRemote are written before closing is closed
		return &goodbyeError{peer: pc.id.Short(), reason: pc.reason, detail: pc.detail}
	}
	return fmt.Errorf("%w: %s", ErrPeerGone, pc.id.Short())
}

func disconnectEnvelope(reason messages.DisconnectReason, detail string) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_Disconnect{Disconnect: &messages.Disconnect{Reason: reason, Detail: detail}}}
}
