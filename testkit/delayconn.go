package testkit

import (
	"net"
	"os"
	"sync"
	"time"
)

// delayQueueChunks bounds the writes a delayConn holds (one more waits in its sender): a writer that gets that far ahead of the link blocks, as a
// full socket buffer would block it.
const delayQueueChunks = 256

// delayConn emulates a link with a one-way latency on a real connection: each write is handed to the underlying
// connection latency after it was made, in order, by a goroutine of the connection; Write itself returns at once
// unless delayQueueChunks writes are waiting. Wrapping both ends delays each direction once. This is how the
// DESIGN asks a TCP run to do the same work as a run on the in-memory transport.
type delayConn struct {
	net.Conn
	latency time.Duration

	queue  chan delayedWrite
	closed chan struct{} // closed by Close
	failed chan struct{} // closed by the sender once a write failed
	done   chan struct{} // closed when the sender exits

	mu            sync.Mutex
	err           error // the failed write's error
	writeDeadline time.Time
	closeOnce     sync.Once
}

type delayedWrite struct {
	b  []byte
	at time.Time
}

// newDelayConn wraps c; latency must be positive.
func newDelayConn(c net.Conn, latency time.Duration) *delayConn {
	d := &delayConn{
		Conn: c, latency: latency,
		queue:  make(chan delayedWrite, delayQueueChunks),
		closed: make(chan struct{}), failed: make(chan struct{}), done: make(chan struct{}),
	}
	go d.send()
	return d
}

// send writes the queued chunks out, each at its time, until Close or a failed write.
func (d *delayConn) send() {
	defer close(d.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var w delayedWrite
		select {
		case w = <-d.queue:
		case <-d.closed:
			return
		}
		if wait := time.Until(w.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.closed:
				return
			}
		}
		if _, err := d.Conn.Write(w.b); err != nil {
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
	d.mu.Lock()
	err, deadline := d.err, d.writeDeadline
	d.mu.Unlock()
	if err != nil {
		return 0, err
	}
	select {
	case <-d.closed:
		return 0, net.ErrClosed
	default:
	}
	w := delayedWrite{b: append([]byte(nil), b...), at: time.Now().Add(d.latency)}
	select {
	case d.queue <- w:
		return len(b), nil
	default:
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case d.queue <- w:
		return len(b), nil
	case <-expired:
		return 0, os.ErrDeadlineExceeded
	case <-d.failed:
		d.mu.Lock()
		defer d.mu.Unlock()
		return 0, d.err
	case <-d.closed:
		return 0, net.ErrClosed
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

// Close drops what is still queued, closes the underlying connection and waits for the sender to exit.
func (d *delayConn) Close() error {
	err := net.ErrClosed
	d.closeOnce.Do(func() {
		close(d.closed)
		err = d.Conn.Close()
		<-d.done
	})
	return err
}
