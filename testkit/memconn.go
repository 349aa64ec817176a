package testkit

import (
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/actormesh/actormesh/session"
)

// The connections of a MemNetwork: two ends sharing one state, a timed byte stream per direction.

// memConnState is the shared state of a connection's two ends: end 0 dialed, end 1 accepted.
type memConnState struct {
	n         *MemNetwork
	link      linkKey // the endpoints, for links and cuts
	tr        [2]*MemTransport
	addr      [2]memAddr // each end's local address
	ephemeral int        // end 0's port

	mu    sync.Mutex
	rng   *rand.Rand
	dir   [2]stream // dir[i] carries what end i writes
	end   [2]endState
	reset bool
}

type endState struct {
	closed bool
	// wclosed is set by CloseWrite: the end writes no more, and the peer reads io.EOF once it read what came before.
	wclosed       bool
	readDeadline  time.Time
	writeDeadline time.Time
	// readTimer wakes a blocked Read when readDeadline passes; it is due at readTimerAt. One timer per deadline,
	// not one per wait: a reader waits for every chunk. And a deadline moved later keeps the timer, which re-arms
	// itself when it comes due before the deadline: a connection's reader moves its deadline every second (as
	// with TCP, where that costs no allocation), and a new timer each time was 4 % of node sim's allocations.
	readTimer   *time.Timer
	readTimerAt time.Time
}

// stopReadTimer stops the end's deadline timer, if any. Called with s.mu.
func (e *endState) stopReadTimer() {
	if e.readTimer != nil {
		e.readTimer.Stop()
		e.readTimer = nil
	}
}

// armReadTimer makes the end's deadline timer due at the read deadline, or earlier (it then re-arms itself).
// Called with s.mu.
func (c *memConn) armReadTimer() {
	s := c.s
	e := &s.end[c.side]
	if e.readTimer != nil && !e.readTimerAt.After(e.readDeadline) {
		return // due no later than the deadline: it re-checks when it fires
	}
	e.stopReadTimer()
	var tm *time.Timer
	tm = time.AfterFunc(time.Until(e.readDeadline), func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if e.readTimer != tm {
			return // stopped or replaced meanwhile
		}
		e.readTimer = nil
		switch {
		case e.readDeadline.IsZero():
		case time.Now().Before(e.readDeadline):
			c.armReadTimer() // the deadline moved later
		default:
			broadcast(&s.dir[1-c.side].readable)
		}
	})
	e.readTimer, e.readTimerAt = tm, e.readDeadline
}

// stream is one direction of a connection: FIFO chunks, each due at its delivery time.
type stream struct {
	q []chunk
	// buffered is the memory the queued chunks hold: each chunk's pooled buffer and chunkOverhead, until it is
	// read whole. Counting the bytes written let a writer of small writes hold ~1000 times MaxBuffered (a 1-byte
	// write takes a buffer of 1 KiB), where a kernel charges a socket its buffers' true size.
	buffered int
	lastTx   time.Time // end of the last write's transmission (bandwidth cap)
	lastAt   time.Time // delivery time of the last write
	readable chan struct{}
	writable chan struct{}
	// due wakes the reader when the first queued chunk is due: the reader waits on its channel (and on
	// readable), and sets it itself when that chunk is queued already; a writer that queues a chunk while the
	// reader waits on the empty queue sets it for that chunk (see wakeReader). The runtime then readies the
	// reader when the chunk is due, as a socket's reader is readied when bytes arrive: one wake-up per chunk, with
	// no goroutine or allocation of its own (a time.AfterFunc per chunk, which then woke the reader, was ~5 % of
	// node sim's CPU). Made on first use.
	due *time.Timer
}

// dueTimer returns the stream's due timer, made stopped on first use. Called with s.mu.
func (d *stream) dueTimer() *time.Timer {
	if d.due == nil {
		d.due = time.NewTimer(time.Hour)
		d.due.Stop()
	}
	return d.due
}

// wakeReader wakes the reader waiting on the empty queue, if any, when the chunk just queued (due at at) is due.
// Woken at once, it would find the chunk not due yet and wait again: two wake-ups for each chunk, where a
// socket's reader wakes once, when the bytes arrive. The reader is blocked on the due timer's channel, so this
// Reset puts the timer in the runtime's heap afresh: no Reset of a timer already there, which marks it modified
// and has the runtime scan its whole heap (thousands of timers in a large sim) when it comes due. Called with s.mu.
func (s *memConnState) wakeReader(d *stream, at, now time.Time) {
	if d.readable == nil {
		return // no reader waits: it finds the chunk when it comes to read
	}
	if !at.After(now) {
		broadcast(&d.readable)
		return
	}
	d.dueTimer().Reset(at.Sub(now))
}

// stopDue stops the due timer, if any. Called with s.mu.
func (d *stream) stopDue() {
	if d.due != nil {
		d.due.Stop()
	}
}

type chunk struct {
	b   []byte  // the bytes not read yet
	buf *[]byte // the pooled buffer under b
	at  time.Time
}

// chunkOverhead is what a queued chunk costs beyond its buffer (the chunk and the slice headers).
const chunkOverhead = 64

// charge is what c counts against MaxBuffered while queued.
func (c chunk) charge() int { return cap(*c.buf) + chunkOverhead }

// schedule computes the delivery time of a write of size bytes at now.
func (d *stream) schedule(size int, now time.Time, lc LinkConfig, retransmit time.Duration, rng *rand.Rand) time.Time {
	txEnd := now
	if lc.Bandwidth > 0 {
		start := now
		if d.lastTx.After(now) {
			start = d.lastTx
		}
		txEnd = start.Add(time.Duration(int64(size) * int64(time.Second) / lc.Bandwidth))
		d.lastTx = txEnd
	}
	at := txEnd.Add(lc.Latency)
	if lc.Jitter > 0 {
		at = at.Add(time.Duration(rng.Int64N(int64(lc.Jitter))))
	}
	if lc.Loss > 0 && rng.Float64() < lc.Loss {
		at = at.Add(retransmit)
	}
	if at.Before(d.lastAt) {
		at = d.lastAt
	}
	d.lastAt = at
	return at
}

// read copies the bytes due at now into b, giving the chunks it empties back to pool.
func (d *stream) read(b []byte, now time.Time, pool *session.BufferPool) int {
	n := 0
	for n < len(b) && len(d.q) > 0 && !d.q[0].at.After(now) {
		k := copy(b[n:], d.q[0].b)
		n += k
		if d.q[0].b = d.q[0].b[k:]; len(d.q[0].b) == 0 {
			d.buffered -= d.q[0].charge()
			pool.Put(d.q[0].buf)
			d.q[0] = chunk{}
			d.q = d.q[1:]
		}
	}
	return n
}

func (d *stream) discard(pool *session.BufferPool) {
	d.stopDue()
	for _, c := range d.q {
		pool.Put(c.buf)
	}
	clear(d.q)
	d.q = nil
	d.buffered = 0
}

func (s *memConnState) wakeAll() {
	for i := range s.dir {
		broadcast(&s.dir[i].readable)
		broadcast(&s.dir[i].writable)
	}
}

// wait releases s.mu until *ch is broadcast or, unless zero, until the time until. Called with s.mu.
func (s *memConnState) wait(ch *chan struct{}, until time.Time) {
	c := waitChan(ch)
	if until.IsZero() {
		s.mu.Unlock()
		<-c
		s.mu.Lock()
		return
	}
	d := time.Until(until)
	if d <= 0 {
		return
	}
	// A new timer for every wait, not a pooled one: resetting a timer marks it modified, and when a modified timer
	// comes due the runtime scans its P's whole timer heap (the thousands of timers of a large sim) to re-sort it.
	// With pooled timers that scan ran for every chunk delivered: 4 % of node sim's CPU.
	tm := time.NewTimer(d)
	s.mu.Unlock()
	select {
	case <-c:
	case <-tm.C:
	}
	tm.Stop()
	s.mu.Lock()
}

// abort resets the connection (unless both ends are already closed).
func (s *memConnState) abort() {
	s.mu.Lock()
	if s.reset || (s.end[0].closed && s.end[1].closed) {
		s.mu.Unlock()
		return
	}
	s.reset = true
	s.end[0].stopReadTimer()
	s.end[1].stopReadTimer()
	s.dir[0].discard(s.n.chunks)
	s.dir[1].discard(s.n.chunks)
	s.wakeAll()
	s.mu.Unlock()
	s.n.untrack(s)
}

// memConn is one end of a connection.
type memConn struct {
	s    *memConnState
	side int
}

// Read blocks until bytes are due (or EOF, an error, the read deadline) and returns as many as fit in b.
func (c *memConn) Read(b []byte) (int, error) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	in := &s.dir[1-c.side]
	for {
		now := time.Now()
		if err := c.readErr(now); err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, nil
		}
		if n := in.read(b, now, s.n.chunks); n > 0 {
			broadcast(&in.writable)
			if len(in.q) > 0 {
				// Another reader (net.Conn allows concurrent Reads) may wait for what is left: the due timer,
				// shared, woke this one only, and writers wake readers only when the queue was empty.
				broadcast(&in.readable)
			}
			return n, nil
		}
		if len(in.q) == 0 && (s.end[1-c.side].closed || s.end[1-c.side].wclosed) {
			return 0, io.EOF
		}
		s.waitReadable(in)
	}
}

// waitReadable releases s.mu until in's first chunk is due, or until in.readable is broadcast (a chunk due at
// once, a close, the read deadline's own timer). Called with s.mu.
func (s *memConnState) waitReadable(in *stream) {
	c := waitChan(&in.readable)
	due := in.dueTimer()
	if len(in.q) > 0 {
		wait := time.Until(in.q[0].at)
		if wait <= 0 {
			return
		}
		due.Reset(wait)
	} // else a writer sets the timer for the chunk it queues (wakeReader)
	s.mu.Unlock()
	select {
	case <-c:
	case <-due.C:
	}
	s.mu.Lock()
}

// Write copies b into the connection, blocking while the direction's unread chunks hold MaxBuffered bytes of
// memory.
func (c *memConn) Write(b []byte) (int, error) {
	s := c.s
	lc := s.n.linkConfig(s.link)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &s.dir[c.side]
	written := 0
	for {
		now := time.Now()
		if err := c.writeErr(now); err != nil {
			return written, err
		}
		if written == len(b) {
			return written, nil
		}
		room := s.n.cfg.MaxBuffered - out.buffered
		if room <= 0 {
			s.wait(&out.writable, s.end[c.side].writeDeadline)
			continue
		}
		k := min(room, len(b)-written)
		at := out.schedule(k, now, lc, s.n.cfg.RetransmitDelay, s.rng)
		wasEmpty := len(out.q) == 0
		buf := s.n.chunks.Get(k)
		copy(*buf, b[written:written+k])
		ch := chunk{b: *buf, buf: buf, at: at}
		out.q = append(out.q, ch)
		out.buffered += ch.charge()
		written += k
		s.n.written.Add(int64(k))
		s.tr[c.side].written.Add(int64(k))
		if wasEmpty {
			// A reader waiting on a non-empty queue wakes when its first chunk is due, which is no later than
			// this one (chunks are due in order): only a reader waiting on an empty queue needs waking.
			s.wakeReader(out, at, now)
		}
	}
}

// CloseWrite half-closes this end, as a TCP socket's shutdown of its sending side: its writes fail with EPIPE from
// then on, and the peer reads what was written before, then io.EOF; this end still reads. A graceful close writes
// its goodbye, half-closes and reads on until the peer closes too, so that what the peer sent meanwhile is read
// (see actors' linger); without a half-close it closed at once, dropping it. As TCP's shutdown, it fails only on an
// end closed or a connection reset: not once the peer has closed (what the peer wrote before is still read), nor
// past the write deadline. It failed with EPIPE then, and a node whose peer read its goodbye and closed before the
// node half-closed (its writer ran late on a loaded host) stopped reading, dropping the peer's last messages on the
// losing connection of a simultaneous dial (TestSendsOverSimultaneousDialsAreAllDelivered, once in 20 runs under
// load).
func (c *memConn) CloseWrite() error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.end[c.side].closed:
		return c.opErr("shutdown", net.ErrClosed)
	case s.reset:
		return c.opErr("shutdown", os.NewSyscallError("shutdown", syscall.ECONNRESET))
	}
	s.end[c.side].wclosed = true
	broadcast(&s.dir[c.side].readable)
	return nil
}

// Close closes this end: its own reads and writes fail with net.ErrClosed, the peer reads what was written then
// io.EOF, and the peer's writes fail with EPIPE. It is idempotent.
func (c *memConn) Close() error {
	s := c.s
	s.mu.Lock()
	if s.end[c.side].closed {
		s.mu.Unlock()
		return nil
	}
	s.end[c.side].closed = true
	s.end[c.side].stopReadTimer()
	s.dir[1-c.side].discard(s.n.chunks)
	s.wakeAll()
	done := s.reset || s.end[1-c.side].closed
	s.mu.Unlock()
	if done {
		s.n.untrack(s)
	}
	return nil
}

// LocalAddr returns this end's address.
func (c *memConn) LocalAddr() net.Addr { return c.s.addr[c.side] }

// RemoteAddr returns the peer's address.
func (c *memConn) RemoteAddr() net.Addr { return c.s.addr[1-c.side] }

// SetDeadline sets both deadlines.
func (c *memConn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, true, true)
}

// SetReadDeadline sets the read deadline, waking a blocked Read.
func (c *memConn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline sets the write deadline, waking a blocked Write.
func (c *memConn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c *memConn) setDeadline(t time.Time, read, write bool) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end[c.side].closed {
		return c.opErr("set", net.ErrClosed)
	}
	if read {
		e := &s.end[c.side]
		e.readDeadline = t
		switch {
		case t.IsZero():
			e.stopReadTimer()
		case time.Until(t) <= 0:
			e.stopReadTimer()
			broadcast(&s.dir[1-c.side].readable) // a blocked Read fails at once
		default:
			c.armReadTimer()
		}
	}
	if write {
		s.end[c.side].writeDeadline = t
		broadcast(&s.dir[c.side].writable)
	}
	return nil
}

// readErr is the error a Read fails with at now, if any. Called with s.mu.
func (c *memConn) readErr(now time.Time) error {
	me := c.s.end[c.side]
	switch {
	case me.closed:
		return c.opErr("read", net.ErrClosed)
	case c.s.reset:
		return c.opErr("read", os.NewSyscallError("read", syscall.ECONNRESET))
	case expired(me.readDeadline, now):
		return c.opErr("read", os.ErrDeadlineExceeded)
	}
	return nil
}

// writeErr is the error a Write fails with at now, if any. Called with s.mu.
func (c *memConn) writeErr(now time.Time) error {
	me := c.s.end[c.side]
	switch {
	case me.closed:
		return c.opErr("write", net.ErrClosed)
	case c.s.reset:
		return c.opErr("write", os.NewSyscallError("write", syscall.ECONNRESET))
	case me.wclosed, c.s.end[1-c.side].closed:
		return c.opErr("write", os.NewSyscallError("write", syscall.EPIPE))
	case expired(me.writeDeadline, now):
		return c.opErr("write", os.ErrDeadlineExceeded)
	}
	return nil
}

func (c *memConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: memNet, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

func expired(deadline, now time.Time) bool { return !deadline.IsZero() && !now.Before(deadline) }
