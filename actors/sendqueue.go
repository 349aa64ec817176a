package actors

import (
	"errors"
	"sync"
)

var (
	errQueueFull   = errors.New("send queue full")
	errQueueClosed = errors.New("send queue closed")
)

// sendQueue is a peer's bounded outbound queue of encoded envelopes. Pushing never blocks: a push that would pass
// the byte limit fails. Control messages get a small allowance beyond the limit so that a pong or a disconnect
// notice still goes out when data filled the queue. The writer goroutine takes everything queued at once (batching);
// that batch counts in len until the writer reports it written.
type sendQueue struct {
	mu       sync.Mutex
	items    [][]byte
	bytes    int
	inflight int // bytes the writer took and has not reported written
	limit    int
	closed   bool
	notify   chan struct{}
}

// controlAllowance is the extra room control messages may use beyond the limit.
const controlAllowance = 64 << 10

func newSendQueue(limit int) *sendQueue {
	return &sendQueue{limit: limit, notify: make(chan struct{}, 1)}
}

// push queues b, or fails with errQueueFull or errQueueClosed.
func (q *sendQueue) push(b []byte, control bool) error {
	q.mu.Lock()
	limit := q.limit
	if control {
		limit += controlAllowance
	}
	switch {
	case q.closed:
		q.mu.Unlock()
		return errQueueClosed
	case q.bytes+len(b) > limit && len(q.items) > 0:
		q.mu.Unlock()
		return errQueueFull
	}
	q.items = append(q.items, b)
	q.bytes += len(b)
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

// take moves every queued item into spare (reused by the caller) and returns it.
func (q *sendQueue) take(spare [][]byte) [][]byte {
	q.mu.Lock()
	items := q.items
	q.items = spare[:0]
	q.inflight, q.bytes = q.bytes, 0
	q.mu.Unlock()
	return items
}

// written reports the batch of the last take written (or failed).
func (q *sendQueue) written() {
	q.mu.Lock()
	q.inflight = 0
	q.mu.Unlock()
}

// requeue puts a batch the writer took back at the front, so that a graceful close still flushes it.
func (q *sendQueue) requeue(batch [][]byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, b := range batch {
		n += len(b)
	}
	q.items = append(append(make([][]byte, 0, len(batch)+len(q.items)), batch...), q.items...)
	q.bytes += n
	q.inflight = 0
}

// close makes later pushes fail and returns what was still queued.
func (q *sendQueue) close() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	items := q.items
	q.items, q.bytes, q.inflight = nil, 0, 0
	return items
}

// len reports the queued bytes, the batch being written included.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes + q.inflight
}
