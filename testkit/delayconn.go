package testkit

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// delayQueueChunks bounds the writes a delayConn holds (one more waits in its sender): a writer that gets that far ahead of the link blocks, as a
// full socket buffer would block it.
const delayQueueChunks = 256

// delayConn emulates a link with a one-way latency on a real connection: each write is handed to the underlying
// connection latency after it was made, in order, by a goroutine of the connection; Write itself returns at once
// unless delayQueueChunks writes are waiting. Wrapping both ends delays each direction once. This is how the
// DESIGN asks a TCP run to do the same work as a run on the in-memory transport. The queue is a slice that holds
// only what is pending (a channel of delayQueueChunks slots cost 12 KiB per connection, idle or not, and made the
// TCP runs of node sim report 0.4 MiB per node more than the stack used), and the goroutine runs only while
// writes are pending: one per connection end, idle or not, was 3 400 goroutines in a 200-node run, most of the
// difference between its memory and the in-memory transport's.
type delayConn struct {
	net.Conn
	latency time.Duration

	closed  chan struct{}  // closed by Close, with mu held
	failed  chan struct{}  // closed by the sender once a write failed
	senders sync.WaitGroup // the sender, while one runs
	// timer is the sender's, kept from one run to the next; only the running sender uses it (runs are ordered by
	// sending, under mu).
	timer *time.Timer

	mu            sync.Mutex
	queue         []delayedWrite // pending, oldest first; nil when empty
	sending       bool           // a sender runs: it takes every write queued before it finds the queue empty
	room          chan struct{}  // if not nil, writers wait for room: closed when the sender takes a write
	err           error          // the failed write's error
	writeDeadline time.Time
	closeOnce     sync.Once
}

// delayedWrite is a queued write, or with closeWrite a queued half-close.
type delayedWrite struct {
	b          []byte
	at         time.Time
	closeWrite bool
}

// NewLinkConn wraps c as node sim's TCP runs wrap both ends of every connection: the bytes of each write are
// added to written, and with a positive latency the write reaches c that long after it was made, in order, Write
// returning at once unless the link is far behind. CloseWrite (when c has it) is delivered in order too, after the
// writes made before it; Close drops the writes not delivered yet, as an abortive close would, so a graceful end
// half-closes first. It is for harnesses that must emulate links the same way, such
// as the gossipsub comparison (testkit/gossipsubsim).
func NewLinkConn(c net.Conn, latency time.Duration, written *atomic.Int64) net.Conn {
	if latency > 0 {
		c = newDelayConn(c, latency)
	}
	return &countingConn{Conn: c, written: written}
}

// newDelayConn wraps c; latency must be positive.
func newDelayConn(c net.Conn, latency time.Duration) *delayConn {
	return &delayConn{Conn: c, latency: latency, closed: make(chan struct{}), failed: make(chan struct{})}
}

// next takes the oldest queued write; when there is none, the sender stops (the next write starts another).
func (d *delayConn) next() (delayedWrite, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 || isClosed(d.closed) {
		d.sending = false
		return delayedWrite{}, false
	}
	w := d.queue[0]
	d.queue[0] = delayedWrite{}
	if d.queue = d.queue[1:]; len(d.queue) == 0 {
		d.queue = nil // an idle connection holds no queue
	}
	if d.room != nil {
		close(d.room)
		d.room = nil
	}
	return w, true
}

// send writes the queued chunks out, each at its time, until the queue is empty, Close or a failed write.
func (d *delayConn) send() {
	defer d.senders.Done()
	for {
		w, ok := d.next()
		if !ok {
			return
		}
		if wait := time.Until(w.at); wait > 0 {
			if d.timer == nil {
				d.timer = time.NewTimer(wait)
			} else {
				d.timer.Reset(wait)
			}
			select {
			case <-d.timer.C:
			case <-d.closed:
				d.timer.Stop()
				return
			}
		}
		var err error
		if w.closeWrite {
			err = d.Conn.(interface{ CloseWrite() error }).CloseWrite()
		} else {
			_, err = d.Conn.Write(w.b)
		}
		if err != nil {
			d.mu.Lock()
			d.err = err
			d.mu.Unlock()
			close(d.failed)
			return
		}
	}
}

// Write queues a copy of b for delivery after the latency. It blocks while the queue is full, until the write
// deadline, and returns the error of an earlier write that failed.
func (d *delayConn) Write(b []byte) (int, error) {
	if err := d.enqueue(delayedWrite{b: append([]byte(nil), b...)}); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CloseWrite half-closes the underlying connection after the writes queued before it, as a TCP socket sends its
// FIN after the data written before. It fails if the underlying connection has no half-close.
func (d *delayConn) CloseWrite() error {
	if _, ok := d.Conn.(interface{ CloseWrite() error }); !ok {
		return errors.ErrUnsupported
	}
	return d.enqueue(delayedWrite{closeWrite: true})
}

// enqueue queues w, stamped with its delivery time, waiting for room as Write does.
func (d *delayConn) enqueue(w delayedWrite) error {
	w.at = time.Now().Add(d.latency)
	var expired <-chan time.Time
	for {
		d.mu.Lock()
		switch {
		case d.err != nil:
			err := d.err
			d.mu.Unlock()
			return err
		case isClosed(d.closed):
			d.mu.Unlock()
			return net.ErrClosed
		case len(d.queue) < delayQueueChunks:
			d.queue = append(d.queue, w)
			if !d.sending {
				d.sending = true
				d.senders.Add(1) // with mu held and d.closed open: before Close's Wait
				go d.send()
			}
			d.mu.Unlock()
			return nil
		}
		if d.room == nil {
			d.room = make(chan struct{})
		}
		room, deadline := d.room, d.writeDeadline
		d.mu.Unlock()
		if expired == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-room:
		case <-expired:
			return os.ErrDeadlineExceeded
		case <-d.failed:
		case <-d.closed:
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// SetWriteDeadline bounds the wait of a Write for room in the queue, and the underlying connection's writes.
func (d *delayConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.writeDeadline = t
	d.mu.Unlock()
	return d.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines.
func (d *delayConn) SetDeadline(t time.Time) error {
	if err := d.SetWriteDeadline(t); err != nil {
		return err
	}
	return d.Conn.SetReadDeadline(t)
}

// Close drops what is still queued, closes the underlying connection and waits for the sender, if any, to exit.
func (d *delayConn) Close() error {
	err := net.ErrClosed
	d.closeOnce.Do(func() {
		d.mu.Lock()
		close(d.closed)
		d.mu.Unlock()
		err = d.Conn.Close()
		d.senders.Wait()
	})
	return err
}
