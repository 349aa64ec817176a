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
// notice still goes out when data filled the queue. A writer takes everything queued at once (batching); that batch
// counts in len until the writer reports it written.
//
// The writer runs only while there is something to write: take marks the queue idle when it finds nothing, and the
// next push (or stop) starts a writer again through startWriter. An idle connection thus holds no writer goroutine.
type sendQueue struct {
	mu       sync.Mutex
	items    [][]byte
	bytes    int
	inflight int // bytes the writer took and has not reported written
	limit    int
	closed   bool // pushes fail
	stopping bool // the connection is closing: the writer finishes instead of going idle
	// active is set while a writer runs, and before the connection starts (start launches the first writer).
	active      bool
	startWriter func()
}

// controlAllowance is the extra room control messages may use beyond the limit.
const controlAllowance = 64 << 10

// newSendQueue returns an empty queue; startWriter is called, outside the queue's lock, whenever a writer must start.
func newSendQueue(limit int, startWriter func()) *sendQueue {
	return &sendQueue{limit: limit, active: true, startWriter: startWriter}
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
	start := q.claimWriter()
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
	return nil
}

// takeResult tells the writer what take found.
type takeResult int

const (
	// batchTaken: write the batch, then take again.
	batchTaken takeResult = iota
	// queueIdle: nothing is queued; the writer ends and the next push starts another.
	queueIdle
	// queueStopping: the connection is closing; the writer finishes it.
	queueStopping
)

// take moves every queued item into spare (reused by the caller) and returns it, or tells the writer to end.
func (q *sendQueue) take(spare [][]byte) ([][]byte, takeResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.stopping:
		return nil, queueStopping
	case len(q.items) == 0:
		q.active = false
		return nil, queueIdle
	}
	items := q.items
	q.items = spare[:0]
	q.inflight, q.bytes = q.bytes, 0
	return items, batchTaken
}

// stop makes the writer finish the connection: the running one at its next take, or a new one if none runs.
func (q *sendQueue) stop() {
	q.mu.Lock()
	q.stopping = true
	start := q.claimWriter()
	q.mu.Unlock()
	if start {
		q.startWriter()
	}
}

// claimWriter marks a writer running and tells whether the caller must start it (none ran). Called with q.mu.
func (q *sendQueue) claimWriter() bool {
	start := !q.active
	q.active = true
	return start
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
