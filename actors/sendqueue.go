package actors

import (
	"errors"
	"sync"
)

var (
	errQueueFull   = errors.New("send queue full")
	errQueueClosed = errors.New("send queue closed")
	// errQueueBusy is pushApp's refusal: the queue holds half its limit or more.
	errQueueBusy = errors.New("send queue busy")
)

// sendQueue is a peer's bounded outbound queue of encoded envelopes. Pushing never blocks: a push that would pass
// the byte limit fails. Control messages get a small allowance beyond the limit so that a pong or a disconnect
// notice still goes out when data filled the queue. A writer takes everything queued at once (batching); that batch
// counts in len, and against the limit, until the writer reports it written: a peer reading slowly holds at most
// the limit, not the limit queued plus as much being written.
//
// The writer runs only while there is something to write: take marks the queue idle when it finds nothing, and the
// next push (or stop) starts a writer again through startWriter. An idle connection thus holds no writer goroutine.
type sendQueue struct {
	mu    sync.Mutex
	items [][]byte
	// lent holds, item by item, the pooled buffer under it (nil for most), which the writer gives back once the
	// item is written.
	lent     []*[]byte
	bytes    int
	inflight int // bytes the writer took and has not reported written
	// inflightItems counts the items of that batch (each is charged queueItemOverhead against the limit).
	inflightItems int
	limit         int
	closed        bool // pushes fail
	stopping      bool // the connection is closing: the writer finishes instead of going idle
	// active is set while a writer runs, and before the connection starts (start launches the first writer).
	active      bool
	startWriter func()
	// room is closed when a batch is written or the queue closes, for the application's pushes that wait (pushApp);
	// nil while none waits.
	room chan struct{}
}

// controlAllowance is the extra room control messages may use beyond the limit.
const controlAllowance = 64 << 10

// queueItemOverhead is what each queued item is charged against the limit beyond its bytes: about the memory an
// item takes besides them (its slots in items and lent, its allocation's rounding, its slot in the writer's batch).
// Counting bytes alone, a peer that sent pings and read slowly made the node queue millions of 2-byte pongs, which
// held hundreds of MB under a 16 MiB limit.
const queueItemOverhead = 64

// newSendQueue returns an empty queue; startWriter is called, outside the queue's lock, whenever a writer must start.
func newSendQueue(limit int, startWriter func()) *sendQueue {
	return &sendQueue{limit: limit, active: true, startWriter: startWriter}
}

// push queues b, or fails with errQueueFull or errQueueClosed.
func (q *sendQueue) push(b []byte, control bool) error { return q.pushLent(b, nil, control) }

// pushLent queues b, which lies in the pooled buffer buf (nil if it does not): once queued, b and buf belong to the
// queue and its writer. It fails as push does, and then they stay the caller's.
func (q *sendQueue) pushLent(b []byte, buf *[]byte, control bool) error {
	q.mu.Lock()
	limit := q.limit
	if control {
		limit += controlAllowance
	}
	return q.pushLocked(b, buf, limit)
}

// pushApp queues an application message (Send, Request, Reply), which may go only while the queue (gossip and
// control included) holds less than half its limit, and fits it whole: the rest is left to gossip and control.
// Application messages could fill the queue whole (many large replies to a peer's concurrent requests, or Sends
// within a peer's window larger than this queue), and the next push then disconnected the peer as slow, though it
// read all along (an audit's finding). Otherwise it fails with errQueueBusy and a channel closed once a batch is
// written or the queue closes, to try again at; or as push.
func (q *sendQueue) pushApp(b []byte) (room <-chan struct{}, err error) {
	q.mu.Lock()
	busy := q.charged() >= q.limit/2 || q.charged()+len(b)+queueItemOverhead > q.limit
	if !q.closed && busy && (len(q.items) > 0 || q.inflightItems > 0) {
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room := q.room
		q.mu.Unlock()
		return room, errQueueBusy
	}
	return nil, q.pushLocked(b, nil, q.limit)
}

// pushLocked queues b within limit; it is called with q.mu, which it unlocks.
func (q *sendQueue) pushLocked(b []byte, buf *[]byte, limit int) error {
	switch {
	case q.closed:
		q.mu.Unlock()
		return errQueueClosed
	case q.charged()+len(b)+queueItemOverhead > limit && (len(q.items) > 0 || q.inflightItems > 0): // an idle queue takes any one item
		q.mu.Unlock()
		return errQueueFull
	}
	q.items = append(q.items, b)
	q.lent = append(q.lent, buf)
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

// batch is what the writer takes at once: the items and, item by item, the pooled buffers under them.
type batch struct {
	items [][]byte
	lent  []*[]byte
}

// take moves every queued item into spare (whose slices it reuses) and returns it, or tells the writer to end.
func (q *sendQueue) take(spare batch) (batch, takeResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.stopping:
		return batch{}, queueStopping
	case len(q.items) == 0:
		q.active = false
		return batch{}, queueIdle
	}
	b := batch{items: q.items, lent: q.lent}
	q.inflightItems = len(q.items)
	q.items, q.lent = spare.items[:0], spare.lent[:0]
	q.inflight, q.bytes = q.bytes, 0
	return b, batchTaken
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
	q.inflight, q.inflightItems = 0, 0
	q.wakeLocked()
	q.mu.Unlock()
}

// wakeLocked wakes the application's pushes waiting for room. Called with q.mu.
func (q *sendQueue) wakeLocked() {
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
}

// requeue puts a batch the writer took back at the front, so that a graceful close still flushes it.
func (q *sendQueue) requeue(b batch) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, item := range b.items {
		n += len(item)
	}
	q.items = append(append(make([][]byte, 0, len(b.items)+len(q.items)), b.items...), q.items...)
	q.lent = append(append(make([]*[]byte, 0, len(b.lent)+len(q.lent)), b.lent...), q.lent...)
	q.bytes += n
	q.inflight, q.inflightItems = 0, 0
}

// close makes later pushes fail and returns what was still queued.
func (q *sendQueue) close() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.wakeLocked()
	items := q.items
	q.items, q.lent, q.bytes, q.inflight, q.inflightItems = nil, nil, 0, 0, 0 // the lent buffers go with the items, to the collector
	return items
}

// charged is what the queue holds against its limit: the bytes queued and being written, and queueItemOverhead
// for each of their items. Called with q.mu.
func (q *sendQueue) charged() int {
	return q.bytes + q.inflight + (len(q.items)+q.inflightItems)*queueItemOverhead
}

// len reports the queued bytes, the batch being written included.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes + q.inflight
}
