package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBufferPoolGet(t *testing.T) {
	pool := NewBufferPool()
	for _, tc := range []struct{ n, cap int }{
		{0, 1 << 10}, {1, 1 << 10}, {1 << 10, 1 << 10}, {1<<10 + 1, 2 << 10}, {5000, 8 << 10},
		{2 + 65535, 128 << 10}, {maxWriteBuffer, 128 << 10}, {128<<10 + 1, 128<<10 + 1},
	} {
		for _, p := range []*BufferPool{pool, nil} {
			b := p.Get(tc.n)
			if len(*b) != tc.n || cap(*b) != tc.cap {
				t.Errorf("pool %p: Get(%d) has length %d, capacity %d; want capacity %d", p, tc.n, len(*b), cap(*b), tc.cap)
			}
			p.Put(b)
		}
	}
}

// getsBack reports whether Get(n) returns b within a few tries (sync.Pool may drop a buffer: always under
// the race detector, in a fraction of Puts, and at garbage collections).
func getsBack(pool *BufferPool, b *[]byte, n int) bool {
	for range 100 {
		pool.Put(b)
		if got := pool.Get(n); got == b {
			return true
		}
	}
	return false
}

func TestBufferPoolReuse(t *testing.T) {
	pool := NewBufferPool()
	b := pool.Get(3000)
	if !getsBack(pool, b, 2049) || len(*b) != 2049 {
		t.Fatalf("a buffer given back is not reused (length %d)", len(*b))
	}
	*b = (*b)[:10] // callers may reslice
	if !getsBack(pool, b, 4096) || len(*b) != 4096 {
		t.Fatalf("a resliced buffer is not reused (length %d)", len(*b))
	}
	if getsBack(pool, b, 1024) || getsBack(pool, b, 8192) {
		t.Fatal("a buffer is handed out for another size class")
	}
	if allocs := testing.AllocsPerRun(100, func() { pool.Put(pool.Get(1000)) }); allocs != 0 {
		t.Errorf("Get and Put allocate %v times, want 0", allocs)
	}
}

func TestBufferPoolDropsOddBuffers(t *testing.T) {
	pool := NewBufferPool()
	for _, b := range [][]byte{make([]byte, 1000), make([]byte, 10, 3000), make([]byte, 256<<10), nil} {
		n := max(len(b), 1)
		if getsBack(pool, &b, n) {
			t.Errorf("a buffer of capacity %d was pooled", cap(b))
		}
	}
	pool.Put(nil)
	var none *BufferPool
	b := none.Get(100)
	if getsBack(none, b, 100) {
		t.Error("a nil pool keeps buffers")
	}
}

// poolTracker follows the buffers of a pool: it fails the test on a buffer handed out twice or given back
// twice, and poisons every buffer given back, so that a slice of it still in use shows up as corrupt data.
type poolTracker struct {
	tb   testing.TB
	mu   sync.Mutex
	out  map[*[]byte]bool
	gets int
}

// trackedPool returns a pool watched by a poolTracker.
func trackedPool(tb testing.TB) (*BufferPool, *poolTracker) {
	tr := &poolTracker{tb: tb, out: make(map[*[]byte]bool)}
	pool := NewBufferPool()
	pool.trace = tr.trace
	return pool, tr
}

func (tr *poolTracker) trace(p *[]byte, put bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.out[p] != put {
		tr.tb.Errorf("buffer %p handed out or given back twice (put %v)", p, put)
	}
	if put {
		delete(tr.out, p)
	} else {
		tr.out[p] = true
		tr.gets++
	}
	for i, b := 0, (*p)[:cap(*p)]; i < len(b); i++ {
		b[i] = 0xA5
	}
}

// inUse returns how many buffers are out of the pool.
func (tr *poolTracker) inUse() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.out)
}

// checkIdle fails the test if c holds a buffer other than its small read buffer.
func checkIdle(tb testing.TB, c *Conn, when string) {
	tb.Helper()
	if c.fr.big != nil || c.wpooled != nil || c.wbuf != nil || c.pending != nil {
		tb.Fatalf("%s: the idle Conn holds a %d-byte read buffer, a %d-byte write buffer, %d pending bytes",
			when, len(c.fr.buf()), cap(c.wbuf), len(c.pending))
	}
}

func TestConnIdleHoldsNoBuffer(t *testing.T) {
	sizes := []int{0, 1, 100, 1 << 10, 10 << 10, 70000, 5}
	for _, pooled := range []bool{true, false} {
		t.Run(fmt.Sprintf("pool=%v", pooled), func(t *testing.T) {
			a, b := testConfig(t, 1), testConfig(t, 2)
			var tr *poolTracker
			if pooled {
				a.Buffers, tr = trackedPool(t)
				b.Buffers = a.Buffers
			}
			dc, ac := tcpPair(t)
			ca, cb := handshakeOver(t, dc, ac, a, b)
			defer ca.Close()
			defer cb.Close()
			setDeadlines(t, ca, cb)
			exchange := func(batch [][]byte) {
				t.Helper()
				// Write asynchronously: a batch over the socket buffers needs the reader.
				for _, pair := range [][2]*Conn{{ca, cb}, {cb, ca}} {
					w, r := pair[0], pair[1]
					written := make(chan error, 1)
					go func() { written <- w.WriteMessages(batch...) }()
					for i, want := range batch {
						if got, err := r.ReadMessage(); err != nil || !bytes.Equal(got, want) {
							t.Fatalf("message %d (%d bytes): got %d bytes, %v", i, len(want), len(got), err)
						}
					}
					if err := <-written; err != nil {
						t.Fatal(err)
					}
				}
				when := fmt.Sprintf("after a batch of %d messages, the first of %d bytes", len(batch), len(batch[0]))
				checkIdle(t, ca, when)
				checkIdle(t, cb, when)
				if tr != nil && tr.inUse() != 0 {
					t.Fatalf("%s: %d buffers out of the pool", when, tr.inUse())
				}
			}
			var all [][]byte
			for i, n := range sizes {
				m := testMessage(uint64(i), n)
				all = append(all, m)
				exchange([][]byte{m})
			}
			exchange(all)
		})
	}
}

// setDeadlines gives the reads and writes of conns a minute.
func setDeadlines(tb testing.TB, conns ...*Conn) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, c := range conns {
		if err := errors.Join(c.SetReadDeadline(deadline), c.SetWriteDeadline(deadline)); err != nil {
			tb.Fatal(err)
		}
	}
}

// holdingConn holds back the bytes of its second Write (the initiator's handshake message 3) and sends them
// in one Write with those of the next.
type holdingConn struct {
	net.Conn
	writes int
	held   []byte
}

func (h *holdingConn) Write(p []byte) (int, error) {
	if h.writes++; h.writes == 2 {
		h.held = bytes.Clone(p)
		return len(p), nil
	}
	if _, err := h.Conn.Write(append(h.held, p...)); err != nil {
		return 0, err
	}
	h.held = nil
	return len(p), nil
}

// TestHandshakeReadAheadReachesConn sends the first frames right behind handshake message 3, in one write over
// net.Pipe, so that the responder's handshake reads part of them ahead: the Conn must get them intact. With
// many listen addresses, message 3 does not fit the small read buffer and is read into a pooled one.
func TestHandshakeReadAheadReachesConn(t *testing.T) {
	batch := [][]byte{testMessage(1, 3), testMessage(2, 300), testMessage(3, 70000), testMessage(4, 0), testMessage(5, 9)}
	for _, addrs := range []int{1, 30} {
		for _, pooled := range []bool{true, false} {
			t.Run(fmt.Sprintf("addrs=%d/pool=%v", addrs, pooled), func(t *testing.T) {
				a, b := testConfig(t, 1), testConfig(t, 2)
				a.ListenAddrs = strings.Split(strings.Repeat("192.168.100.100:7000,", addrs-1)+"10.0.0.1:7000", ",")
				var tr *poolTracker
				if pooled {
					a.Buffers, tr = trackedPool(t)
					b.Buffers = a.Buffers
				}
				dc, ac := net.Pipe()
				defer dc.Close()
				defer ac.Close()
				accepted := make(chan handshakeResult, 1)
				go func() {
					c, err := Handshake(context.Background(), ac, b, false, NodeID{})
					accepted <- handshakeResult{c, err}
				}()
				ca, err := Handshake(context.Background(), &holdingConn{Conn: dc}, a, true, NodeID{})
				if err != nil {
					t.Fatal(err)
				}
				written := make(chan error, 1)
				go func() { written <- ca.WriteMessages(batch...) }() // sends message 3 too
				r := <-accepted
				if r.err != nil {
					t.Fatal(r.err)
				}
				cb := r.conn
				setDeadlines(t, cb)
				if len(cb.Peer().ListenAddrs) != addrs {
					t.Fatalf("peer listens on %d addresses, want %d", len(cb.Peer().ListenAddrs), addrs)
				}
				if big := cb.fr.big != nil; big != (addrs > 1) || cb.fr.w == cb.fr.r {
					t.Fatalf("after the handshake: %d bytes read ahead, big buffer %v; want some, %v",
						cb.fr.w-cb.fr.r, big, addrs > 1)
				}
				for i, want := range batch {
					if got, err := cb.ReadMessage(); err != nil || !bytes.Equal(got, want) {
						t.Fatalf("message %d (%d bytes): got %d bytes, %v", i, len(want), len(got), err)
					}
				}
				if err := <-written; err != nil {
					t.Fatal(err)
				}
				checkIdle(t, ca, "at the end")
				checkIdle(t, cb, "at the end")
				if tr != nil && tr.inUse() != 0 {
					t.Fatalf("%d buffers out of the pool at the end", tr.inUse())
				}
			})
		}
	}
}

// chunkReader returns its input in chunks of random sizes, with a timeout error now and then.
type chunkReader struct {
	rng  *rand.Rand
	data []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.rng.IntN(8) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data[:min(len(c.data), 1+c.rng.IntN(1<<c.rng.IntN(18)))])
	c.data = c.data[n:]
	return n, nil
}

// randomBatches returns about total bytes of messages with random contents, in batches of 1 to 8. Sizes are
// spread over tiny, around the small read buffer, a few KiB, and up to 70000 bytes.
func randomBatches(seed uint64, total int) [][][]byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	content := rand.NewChaCha8([32]byte{byte(seed)})
	var batches [][][]byte
	for total > 0 {
		batch := make([][]byte, 1+rng.IntN(8))
		for i := range batch {
			var n int
			switch rng.IntN(4) {
			case 0:
				n = rng.IntN(64)
			case 1:
				n = smallReadBuffer - 40 + rng.IntN(80)
			case 2:
				n = 1 + rng.IntN(8<<10)
			default:
				n = 1 + rng.IntN(70000)
			}
			batch[i] = make([]byte, n)
			_, _ = content.Read(batch[i])
			total -= n
		}
		batches = append(batches, batch)
	}
	return batches
}

// TestConnReadsChunkedStream reads messages of random sizes from a stream cut at random places, with timeouts
// between the pieces, checking every byte and that a pooled buffer is held only while data needs it.
func TestConnReadsChunkedStream(t *testing.T) {
	for seed := range uint64(4) {
		batches := randomBatches(seed, 2<<20)
		pool, tr := trackedPool(t)
		src := &chunkReader{rng: rand.New(rand.NewPCG(seed, 2)), data: sealed(t, batches...)}
		c := keyedPooledConn(src, nil, 1<<20, pool)
		for i, batch := range batches {
			for j, want := range batch {
				var got []byte
				err := os.ErrDeadlineExceeded
				for errors.Is(err, os.ErrDeadlineExceeded) {
					got, err = c.ReadMessage()
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("seed %d batch %d message %d (%d bytes): got %d bytes, %v", seed, i, j, len(want), len(got), err)
				}
				if len(c.pending) == 0 && c.fr.big != nil && c.fr.w-c.fr.r <= smallReadBuffer {
					t.Fatalf("seed %d batch %d message %d: all consumed but %d unread bytes keep a pooled buffer",
						seed, i, j, c.fr.w-c.fr.r)
				}
			}
		}
		var err error
		for err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			_, err = c.ReadMessage()
		}
		if !errors.Is(err, io.EOF) {
			t.Fatalf("seed %d: after the last message: %v, want io.EOF", seed, err)
		}
		checkIdle(t, c, "at the end")
		if tr.inUse() != 0 {
			t.Fatalf("seed %d: %d buffers out of the pool at the end", seed, tr.inUse())
		}
	}
}

// TestConnRandomRoundTrip sends messages of random sizes both ways at once between two handshaken Conns, over
// TCP loopback and over net.Pipe, with and without a pool shared by both, and checks every byte.
func TestConnRandomRoundTrip(t *testing.T) {
	for _, transport := range []string{"tcp", "pipe"} {
		for _, pooled := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/pool=%v", transport, pooled), func(t *testing.T) {
				a, b := testConfig(t, 1), testConfig(t, 2)
				var tr *poolTracker
				if pooled {
					a.Buffers, tr = trackedPool(t)
					b.Buffers = a.Buffers
				}
				var dc, ac net.Conn
				if transport == "tcp" {
					dc, ac = tcpPair(t)
				} else {
					dc, ac = net.Pipe()
				}
				ca, cb := handshakeOver(t, dc, ac, a, b)
				defer ca.Close()
				defer cb.Close()
				setDeadlines(t, ca, cb) // a lost byte fails the test rather than hanging it
				errs := make(chan error, 4)
				for i, pair := range [][2]*Conn{{ca, cb}, {cb, ca}} {
					w, r := pair[0], pair[1]
					batches := randomBatches(uint64(i), 3<<20)
					go func() { errs <- writeBatches(w, batches) }()
					go func() {
						for k, batch := range batches {
							for j, want := range batch {
								got, err := r.ReadMessage()
								if err == nil && !bytes.Equal(got, want) {
									err = fmt.Errorf("got %d bytes, want %d (content equal: %v)",
										len(got), len(want), bytes.Equal(got, want))
								}
								if err != nil {
									errs <- fmt.Errorf("direction %d batch %d message %d: %w", i, k, j, err)
									return
								}
							}
						}
						errs <- nil
					}()
				}
				for range 4 {
					if err := <-errs; err != nil {
						ca.Close() // unblocks the others
						cb.Close()
						t.Error(err)
					}
				}
				if t.Failed() {
					return
				}
				checkIdle(t, ca, "at the end")
				checkIdle(t, cb, "at the end")
				if tr != nil && tr.inUse() != 0 {
					t.Fatalf("%d buffers out of the pool at the end", tr.inUse())
				}
			})
		}
	}
}

// TestWriteBufferSizeSuffices checks that the buffer WriteMessages takes never needs to grow, and that a batch
// under 64 KiB still goes out in one write.
func TestWriteBufferSizeSuffices(t *testing.T) {
	pool := NewBufferPool()
	frame := maxFramePlaintext
	var shapes [][]int
	for _, n := range []int{0, 1, 1000, frame - 4, frame - 3, frame, 2*frame - 8, writeFlushSize - 2 - 4 - tagSize,
		writeFlushSize, writeFlushSize + 1, 1 << 20} {
		shapes = append(shapes, []int{n}, []int{n, 0}, []int{10, n}, []int{n, n, n})
	}
	rng := rand.New(rand.NewPCG(5, 5))
	for range 200 {
		shape := make([]int, 1+rng.IntN(20))
		for i := range shape {
			shape[i] = rng.IntN(1 << rng.IntN(18))
		}
		shapes = append(shapes, shape)
	}
	for _, shape := range shapes {
		msgs := make([][]byte, len(shape))
		total := 0
		for i, n := range shape {
			msgs[i] = make([]byte, n)
			total += msgHeaderSize + n
		}
		var w countingWriter
		c := keyedPooledConn(nil, &w, 1<<20, pool)
		c.wpooled = pool.Get(writeBufferSize(msgs))
		c.wbuf = (*c.wpooled)[:0]
		if err := c.writeBatch(msgs); err != nil {
			t.Fatal(err)
		}
		if &c.wbuf[:1][0] != &(*c.wpooled)[:1][0] {
			t.Fatalf("batch %v: the %d-byte write buffer was reallocated", shape, cap(*c.wpooled))
		}
		frames := (total + frame - 1) / frame
		if wire := total + frames*(2+tagSize); wire < writeFlushSize && w.writes != 1 {
			t.Fatalf("batch %v: %d wire bytes in %d writes, want 1", shape, wire, w.writes)
		}
	}
}

// TestHandshakeFailureGivesBuffersBack fails a handshake after a message too large for the small read buffer.
func TestHandshakeFailureGivesBuffersBack(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	b.NetworkID = "othernet"
	b.ListenAddrs = strings.Split(strings.Repeat("192.168.100.100:7000,", 29)+"10.0.0.1:7000", ",")
	var tr *poolTracker
	a.Buffers, tr = trackedPool(t)
	b.Buffers = a.Buffers
	dr, ar := runHandshakes(t, a, b, true, NodeID{})
	if !errors.Is(dr.err, ErrNetworkMismatch) || ar.err == nil {
		t.Fatalf("dialer error %v, acceptor error %v; want ErrNetworkMismatch and an error", dr.err, ar.err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.gets == 0 || len(tr.out) != 0 {
		t.Fatalf("%d buffers taken, %d not given back", tr.gets, len(tr.out))
	}
}

// stepReader returns its chunks one Read at a time, and a timeout while the next is not given yet.
type stepReader struct{ chunks [][]byte }

func (s *stepReader) Read(b []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(b, s.chunks[0])
	if s.chunks[0] = s.chunks[0][n:]; len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

// A frame's claimed length is not memory held: a peer that sends the header of a 65535-byte frame and one byte of
// it makes the reader hold at most frameFirstBuffer (it took a 128 KiB buffer at once, held until the idle timeout);
// the whole frame, once it comes, is read right through the growth.
func TestAClaimedFrameLengthIsNotMemoryHeld(t *testing.T) {
	src := &stepReader{chunks: [][]byte{{0xff, 0xff, 7}}}
	f := frameReader{src: src, pool: NewBufferPool()}
	if _, err := f.next(65535); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("next on a partial frame: %v, want the read's timeout", err)
	}
	if held := cap(f.buf()); held > frameFirstBuffer {
		t.Fatalf("3 bytes of a frame claiming 65535 hold a %d-byte buffer, want at most %d", held, frameFirstBuffer)
	}
	// More bytes, one Read each (a review's finding: the second piece took the whole frame's buffer at once).
	for range 100 {
		src.chunks = append(src.chunks, []byte{7})
	}
	if _, err := f.next(65535); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("next on a partial frame: %v, want the read's timeout", err)
	}
	if held := cap(f.buf()); held > frameFirstBuffer {
		t.Fatalf("103 bytes of a frame claiming 65535, one Read each, hold a %d-byte buffer, want at most %d", held, frameFirstBuffer)
	}
	body := make([]byte, 65535)
	for i := range body {
		body[i] = byte(i * 7)
	}
	for i := range 101 {
		body[i] = 7 // sent already
	}
	next := []byte{0, 3, 1, 2, 3} // the next frame, read ahead with the rest of this one
	src.chunks = [][]byte{body[101:30000], append(slices.Clone(body[30000:]), next...)}
	got, err := f.next(65535)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the frame read through the buffer's growth: %d bytes, %v; want the %d sent", len(got), err, len(body))
	}
	if got, err := f.next(65535); err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("the frame read ahead: %v, %v", got, err)
	}
}

// A read that fails on the message's length gives the frame's pooled buffer back, as one that fails on the frame
// does: the failed Conn holds no large buffer until it is closed.
func TestConnReadErrorGivesTheBufferBack(t *testing.T) {
	pool, tr := trackedPool(t)
	c := keyedPooledConn(bytes.NewReader(sealed(t, [][]byte{make([]byte, 5000)})), nil, 4096, pool)
	if _, err := c.ReadMessage(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a 5000-byte message, limit 4096: %v, want ErrMessageTooLarge", err)
	}
	if tr.gets == 0 || tr.inUse() != 0 {
		t.Fatalf("%d buffers taken, %d still held after the failed read", tr.gets, tr.inUse())
	}
}

// A message ReadMessageSlice returns stays valid until the next read, even when it ends the pooled buffer's bytes:
// the buffer goes back to the pool (which poisons it here) only with the next read.
func TestReadMessageSliceKeepsItsBufferUntilTheNextRead(t *testing.T) {
	pool, tr := trackedPool(t)
	want := testMessage(7, 2000) // larger than the small read buffer: read into a pooled one
	c := keyedPooledConn(bytes.NewReader(sealed(t, [][]byte{want}, [][]byte{[]byte("next")})), nil, 4096, pool)
	got, err := c.ReadMessageSlice()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadMessageSlice: %d bytes, %v; equal %v", len(got), err, bytes.Equal(got, want))
	}
	if next, err := c.ReadMessageSlice(); err != nil || string(next) != "next" {
		t.Fatalf("next message: %q, %v", next, err)
	}
	if tr.inUse() != 0 {
		t.Fatalf("%d buffers held", tr.inUse())
	}
}

// zeroReader returns no bytes and no error, for ever.
type zeroReader struct{ reads int }

func (z *zeroReader) Read([]byte) (int, error) { z.reads++; return 0, nil }

// A source that returns nothing and no error makes next fail with io.ErrNoProgress (after 100 such reads, as
// bufio does) instead of spinning for good.
func TestFrameReaderGivesUpOnASourceThatReturnsNothing(t *testing.T) {
	src := &zeroReader{}
	f := frameReader{src: src}
	if _, err := f.next(100); !errors.Is(err, io.ErrNoProgress) || src.reads != 100 {
		t.Fatalf("next: %v after %d reads, want io.ErrNoProgress after 100", err, src.reads)
	}
}

// Once the small buffer is full of a large frame's bytes, the first pooled buffer is frameFirstBuffer, not one for
// the whole claimed frame: 600 bytes of a frame claiming 65535 hold 16 KiB, not 128 KiB.
func TestAFullSmallBufferGrowsToTheFirstBufferOnly(t *testing.T) {
	first := append([]byte{0xff, 0xff}, make([]byte, 598)...)
	f := frameReader{src: &stepReader{chunks: [][]byte{first}}, pool: NewBufferPool()}
	if _, err := f.next(65535); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("next on a partial frame: %v, want the read's timeout", err)
	}
	if held := cap(f.buf()); held <= smallReadBuffer || held > frameFirstBuffer {
		t.Fatalf("600 bytes of a frame claiming 65535 hold a %d-byte buffer, want a pooled one of at most %d", held, frameFirstBuffer)
	}
}

// The largest size class, a whole write buffer's, is pooled like the others.
func TestTheLargestBufferClassIsPooled(t *testing.T) {
	pool := NewBufferPool()
	if b := pool.Get(maxWriteBuffer); !getsBack(pool, b, maxPooledBuffer) {
		t.Fatalf("a %d-byte buffer given back is not reused", maxPooledBuffer)
	}
}
