package actors

import (
	"bytes"
	"fmt"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// requestResult is the outcome of a request: an error, or a reply's payload still encoded (typeURL and value), which
// the requester decodes (see requestTable.complete).
type requestResult struct {
	typeURL string
	value   []byte
	err     error
}

// decode returns the reply's payload, decoded.
func (r requestResult) decode() (proto.Message, error) {
	if r.err != nil || r.typeURL == "" {
		return nil, r.err
	}
	m, err := decodePayload(r.typeURL, r.value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %w", ErrBadPayload, ErrBadReply, err)
	}
	return m, nil
}

type pendingRequest struct {
	pc *peerConn
	ch chan requestResult
	// ping is set for an API ping's entry, which only a pong completes; a request's only a reply does.
	ping bool
}

// requestTable tracks requests and pings awaiting a reply. Entries are removed by the waiter; replies from a peer
// other than the one asked, and answers of the wrong kind (a pong carrying a request's id, a reply carrying a
// ping's), are ignored. Its ids count from 1 and never reach keepaliveNonce's bit, so that a keepalive's pong is
// never taken for an API ping's.
type requestTable struct {
	mu   sync.Mutex
	next uint64
	m    map[uint64]*pendingRequest
}

func newRequestTable() *requestTable { return &requestTable{m: make(map[uint64]*pendingRequest)} }

// add registers a request on pc (a ping with ping set) and returns its id and the channel of its answer.
func (t *requestTable) add(pc *peerConn, ping bool) (uint64, <-chan requestResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.next++
	ch := make(chan requestResult, 1)
	if pc.requestsFailed != nil {
		// The connection was unregistered between the caller's connFor and this: its answer would never come, and
		// the request waited out its timeout instead of failing at once as those failConn failed.
		ch <- requestResult{err: pc.requestsFailed}
	} else {
		t.m[t.next] = &pendingRequest{pc: pc, ch: ch, ping: ping}
	}
	pc.inflight.Add(1)
	pc.used.Store(true)
	return t.next, ch
}

// remove ends a request made with add on pc (called once by its waiter, answered or not).
func (t *requestTable) remove(id uint64, pc *peerConn) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
	pc.inflight.Add(-1)
}

// resolve hands r to the waiter of entry id if pc's peer was asked and the entry is a ping exactly when ping is
// set. It reports false when the entry is there but of the other kind (the answer is dropped); a late answer
// (no entry) or one from another peer is dropped too.
func (t *requestTable) resolve(pc *peerConn, id uint64, ping bool, r requestResult) bool {
	t.mu.Lock()
	p, ok := t.m[id]
	if !ok || p.pc.id != pc.id {
		t.mu.Unlock()
		return true
	}
	if p.ping != ping {
		t.mu.Unlock()
		return false
	}
	delete(t.m, id)
	t.mu.Unlock()
	if r.value != nil { // the reader's, reused: copied only for the request that waits for it
		r.value = bytes.Clone(r.value)
	}
	p.ch <- r
	return true
}

// complete hands a reply to its requester. It runs on the connection's reader, so the payload is only copied here
// and decoded by the requester: decoding a discovery reply's records took the reader's stack from 4 to 8 KiB, for
// the life of the connection, on about one connection in five. It reports false when d's id is a ping's.
func (t *requestTable) complete(pc *peerConn, d *direct) bool {
	var r requestResult
	switch {
	case d.kind == messages.DirectKind_DIRECT_KIND_ERROR:
		// The peer's text, clipped as every text a peer chooses (a goodbye's detail): an application logging the
		// error wrote whatever the peer sent, up to MaxMessageSize, in one line (an audit's finding).
		r.err = &RemoteError{Peer: pc.id.Short(), Protocol: clipText(d.protocol, maxErrorText), Code: d.err.GetCode(),
			Message: clipText(d.err.GetMessage(), maxErrorText)}
	case !d.hasPayload:
		r.err = fmt.Errorf("%w: %w: %w", ErrBadPayload, ErrBadReply, errMissingPayload)
	default:
		r.typeURL, r.value = d.typeURL, d.value // d and its value are the reader's, reused: resolve copies it
	}
	return t.resolve(pc, d.requestID, false, r)
}

// completePong hands a pong to the API ping that sent nonce. It reports false when nonce is a request's id.
func (t *requestTable) completePong(pc *peerConn, nonce uint64) bool {
	return t.resolve(pc, nonce, true, requestResult{})
}

// failConn fails every request waiting on the given connection, and those added to it later.
func (t *requestTable) failConn(pc *peerConn, err error) {
	t.mu.Lock()
	pc.requestsFailed = err // requests added from now on fail at once
	var failed []*pendingRequest
	for id, p := range t.m {
		if p.pc == pc {
			failed = append(failed, p)
			delete(t.m, id)
		}
	}
	t.mu.Unlock()
	for _, p := range failed {
		p.ch <- requestResult{err: err}
	}
}
