package gossip

import "sync"

// keptQueueCap is the largest backing array a deliveryQueue keeps for reuse once drained; a burst's larger one is
// left to the collector.
const keptQueueCap = 64

// deliveryQueue is a subscription's queue of deliveries for its handler: bounded in length and in payload bytes
// (a slow handler let 1024 messages of 512 KiB wait: 512 MiB per topic), and holding memory only for what it
// holds. (A buffered channel of DeliveryBuffer slots held its 8 KiB per subscription, idle or not: 1.6 MB
// of live heap at N = 200 in node sim.) Push never blocks; one consumer takes what is queued in batches.
type deliveryQueue struct {
	mu    sync.Mutex
	items []*Delivery
	spare []*Delivery // the batch the last take returned, reused once its consumer takes again
	max   int
	// bytes is the payload bytes of items, at most maxBytes unless one delivery alone is larger.
	bytes, maxBytes int
	ready           chan struct{} // holds a token while deliveries may be waiting
}

func newDeliveryQueue(max, maxBytes int) *deliveryQueue {
	return &deliveryQueue{max: max, maxBytes: maxBytes, ready: make(chan struct{}, 1)}
}

// push queues d unless max deliveries, or maxBytes of payload with d's, wait already (an empty queue takes any
// delivery); it tells whether d was queued.
func (q *deliveryQueue) push(d *Delivery) bool {
	q.mu.Lock()
	if len(q.items) >= q.max || (len(q.items) > 0 && q.bytes+len(d.Data) > q.maxBytes) {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, d)
	q.bytes += len(d.Data)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns the queued deliveries, oldest first, and empties the queue. The batch is the caller's until its next
// take, which reuses its array.
func (q *deliveryQueue) take() []*Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch, prev := q.items, q.spare
	clear(prev)
	if cap(prev) > keptQueueCap {
		prev = nil
	}
	q.items, q.spare = prev[:0], batch
	q.bytes = 0
	return batch
}
