package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/flynn/noise"
)

// testKey keys both directions of the connections made by keyedConn.
var testKey = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}

// memConn is a net.Conn over an io.Reader and an io.Writer; only what Conn uses is implemented.
type memConn struct {
	net.Conn
	r io.Reader
	w io.Writer
}

func (m *memConn) Read(p []byte) (int, error)  { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error) { return m.w.Write(p) }
func (m *memConn) Close() error                { return nil }

// keyedConn returns a Conn that reads from r and writes to w, both directions keyed with testKey.
func keyedConn(r io.Reader, w io.Writer, maxMsg int) *Conn { return keyedPooledConn(r, w, maxMsg, nil) }

// keyedPooledConn is keyedConn with its buffers from pool.
func keyedPooledConn(r io.Reader, w io.Writer, maxMsg int, pool *BufferPool) *Conn {
	suite := cipherSuiteFor(noise.DH25519)
	nc := &memConn{r: r, w: w}
	return newConn(nc, frameReader{src: nc, pool: pool}, noise.UnsafeNewCipherState(suite, testKey, 0),
		noise.UnsafeNewCipherState(suite, testKey, 0), PeerInfo{}, maxMsg, 0)
}

// sealed returns the wire bytes of WriteMessages(batches[0]...), WriteMessages(batches[1]...) and so on.
func sealed(tb testing.TB, batches ...[][]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	c := keyedConn(nil, &buf, 1<<30)
	for _, b := range batches {
		if err := c.WriteMessages(b...); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

// writeBatches writes each batch with one WriteMessages call, stopping at the first error.
func writeBatches(c *Conn, batches [][][]byte) error {
	for _, batch := range batches {
		if err := c.WriteMessages(batch...); err != nil {
			return err
		}
	}
	return nil
}

// testMessage returns n pseudo-random bytes that depend on seed.
func testMessage(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// handshakenPair returns two Conns connected over TCP with the given maximum message sizes.
func handshakenPair(tb testing.TB, maxA, maxB int) (*Conn, *Conn) {
	tb.Helper()
	a, b := testConfig(tb, 1), testConfig(tb, 2)
	a.MaxMessageSize, b.MaxMessageSize = maxA, maxB
	dc, ac := tcpPair(tb)
	return handshakeOver(tb, dc, ac, a, b)
}

// handshakeOver runs the handshake over the two ends of a connection, the dialer end dc as the initiator with
// configuration a, and returns the two Conns.
func handshakeOver(tb testing.TB, dc, ac net.Conn, a, b HandshakeConfig) (*Conn, *Conn) {
	tb.Helper()
	done := make(chan handshakeResult, 1)
	go func() {
		c, err := Handshake(context.Background(), ac, b, false, NodeID{})
		done <- handshakeResult{c, err}
	}()
	ca, err := Handshake(context.Background(), dc, a, true, NodeID{})
	r := <-done
	if err != nil || r.err != nil {
		tb.Fatal(err, r.err)
	}
	return ca, r.conn
}

func TestConnRoundTrip(t *testing.T) {
	a, b := handshakenPair(t, 0, 0)
	defer a.Close()
	defer b.Close()
	sizes := []int{0, 1, 1024, 65535, 65536 + 17, 1 << 20}
	var batches [][][]byte
	var seed uint64
	next := func(n int) []byte { seed++; return testMessage(seed, n) }
	// All sizes in one batch, each alone, and many small ones in one batch.
	var all [][]byte
	for _, n := range sizes {
		all = append(all, next(n))
		batches = append(batches, [][]byte{next(n)})
	}
	batches = append(batches, all)
	var small [][]byte
	for i := range 300 {
		small = append(small, next(i%50))
	}
	batches = append(batches, small, nil)

	// Both directions at once: each side has one reader and one writer goroutine.
	errs := make(chan error, 2)
	for _, c := range []*Conn{a, b} {
		go func() { errs <- writeBatches(c, batches) }()
	}
	// b reads with ReadMessageSlice, a with ReadMessage; each message is checked before the next read.
	for _, c := range []*Conn{b, a} {
		read := c.ReadMessage
		if c == b {
			read = c.ReadMessageSlice
		}
		for i, batch := range batches {
			for j, want := range batch {
				got, err := read()
				if err != nil {
					t.Fatalf("batch %d message %d: %v", i, j, err)
				}
				if !bytes.Equal(got, want) || got == nil {
					t.Fatalf("batch %d message %d: got %d bytes, want %d (content equal: %v)",
						i, j, len(got), len(want), bytes.Equal(got, want))
				}
			}
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestConnMessageTooLarge(t *testing.T) {
	a, b := handshakenPair(t, 2<<20, 0)
	defer a.Close()
	if a.MaxSendSize() != 1<<20 {
		t.Fatalf("MaxSendSize = %d, want the peer's limit %d", a.MaxSendSize(), 1<<20)
	}
	a.maxSend = a.MaxMessageSize() // a peer that ignores the limit b advertised
	written := make(chan error, 1)
	go func() { written <- a.WriteMessages([]byte("fine"), make([]byte, 1<<20+1)) }()
	if m, err := b.ReadMessage(); err != nil || string(m) != "fine" {
		t.Fatalf("ReadMessage = %q, %v", m, err)
	}
	_, err := b.ReadMessage()
	if !errors.Is(err, ErrMessageTooLarge) || !strings.Contains(err.Error(), "1048577") ||
		!strings.Contains(err.Error(), "1048576") {
		t.Fatalf("error = %v, want ErrMessageTooLarge stating size and limit", err)
	}
	if _, again := b.ReadMessage(); !errors.Is(again, ErrMessageTooLarge) {
		t.Fatalf("second ReadMessage error = %v, want the same error", again)
	}
	b.Close() // unblocks the writer if the socket buffers are full
	<-written
}

func TestConnWriteTooLargeWritesNothing(t *testing.T) {
	var wire bytes.Buffer
	c := keyedConn(nil, &wire, 100)
	err := c.WriteMessages([]byte("ok"), make([]byte, 101))
	if !errors.Is(err, ErrMessageTooLarge) || wire.Len() != 0 {
		t.Fatalf("error = %v, %d bytes written; want ErrMessageTooLarge and nothing written", err, wire.Len())
	}
	if err := c.WriteMessages([]byte("after"), make([]byte, 100)); err != nil {
		t.Fatalf("connection unusable after a refused message: %v", err)
	}
	r := keyedConn(&wire, nil, 100)
	if m, err := r.ReadMessage(); err != nil || string(m) != "after" {
		t.Fatalf("ReadMessage = %q, %v", m, err)
	}
}

func TestMessageDecoderRejectsBeforeAllocating(t *testing.T) {
	for _, size := range []uint32{1 << 31, 1<<32 - 1, 1<<20 + 1} {
		d := messageDecoder{max: 1 << 20}
		hdr := binary.BigEndian.AppendUint32(nil, size)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		n, msg, err := d.Feed(hdr)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMessageTooLarge) || msg != nil || n != 4 {
			t.Fatalf("size %d: Feed = %d, %v, %v; want ErrMessageTooLarge", size, n, msg, err)
		}
		if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64<<10 {
			t.Fatalf("size %d: Feed allocated %d bytes before rejecting", size, allocated)
		}
		if _, _, err := d.Feed([]byte{0, 0, 0, 0}); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("decoder not poisoned after an error: %v", err)
		}
	}
	d := messageDecoder{max: 1 << 20}
	in := append(binary.BigEndian.AppendUint32(nil, 1<<20), make([]byte, 1<<20)...)
	if n, msg, err := d.Feed(in); err != nil || len(msg) != 1<<20 || n != len(in) {
		t.Fatalf("message of exactly the limit: %d, %d bytes, %v", n, len(msg), err)
	}
}

// TestMessageDecoderGrowsWithTheBytesReceived: a header claiming a large message allocates no more than
// msgStartBuffer until the message's bytes arrive (a peer could pin MaxMessageSize per connection for the price of
// four bytes); the message, fed in pieces, comes out whole and exact.
func TestMessageDecoderGrowsWithTheBytesReceived(t *testing.T) {
	const size = 3<<20 + 17
	d := messageDecoder{max: 4 << 20}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if n, msg, err := d.Feed(binary.BigEndian.AppendUint32(nil, size)); n != 4 || msg != nil || err != nil {
		t.Fatalf("header: %d, %v, %v", n, msg, err)
	}
	if n, _, err := d.Feed([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("first bytes: %d, %v", n, err)
	}
	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 2*msgStartBuffer {
		t.Fatalf("a claimed %d-byte message with 3 bytes received allocated %d bytes", size, allocated)
	}
	want := make([]byte, size)
	copy(want, "abc")
	for i := 3; i < size; i++ {
		want[i] = byte(i * 7)
	}
	var got []byte
	for p := want[3:]; len(p) > 0; {
		n, msg, err := d.Feed(p[:min(len(p), 40_000)])
		if err != nil {
			t.Fatal(err)
		}
		p, got = p[n:], msg
	}
	if !bytes.Equal(got, want) || d.midMessage() {
		t.Fatalf("message of %d bytes fed in pieces: got %d bytes, equal %v", size, len(got), bytes.Equal(got, want))
	}
}

func TestMessageDecoderChunking(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i := range 40 {
		m := testMessage(uint64(i), i*7%60)
		want = append(want, m)
		stream = binary.BigEndian.AppendUint32(stream, uint32(len(m)))
		stream = append(stream, m...)
	}
	for _, chunk := range []int{1, 2, 3, 5, 64, len(stream)} {
		d := messageDecoder{max: 100}
		var got [][]byte
		for p := stream; len(p) > 0; {
			in := p[:min(chunk, len(p))]
			p = p[len(in):]
			for len(in) > 0 {
				n, msg, err := d.Feed(in)
				if err != nil {
					t.Fatal(err)
				}
				in = in[n:]
				if msg != nil {
					got = append(got, msg)
				}
			}
		}
		if len(got) != len(want) || d.midMessage() {
			t.Fatalf("chunk %d: %d messages (mid-message %v), want %d", chunk, len(got), d.midMessage(), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("chunk %d: message %d differs", chunk, i)
			}
		}
	}
}

func TestConnTamperedFrame(t *testing.T) {
	wire := sealed(t, [][]byte{[]byte("first")}, [][]byte{[]byte("second frame")})
	frame1 := 2 + int(binary.BigEndian.Uint16(wire))
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
	}{
		{"ciphertext bit", func(w []byte) []byte { w[2] ^= 1; return w }},
		{"tag bit", func(w []byte) []byte { w[frame1-1] ^= 0x80; return w }},
		{"second frame", func(w []byte) []byte { w[frame1+5] ^= 4; return w }},
		{"shortened frame", func(w []byte) []byte {
			binary.BigEndian.PutUint16(w, uint16(frame1-3))
			return append(w[:frame1-1:frame1-1], w[frame1:]...)
		}},
		{"frames swapped", func(w []byte) []byte { return append(append([]byte(nil), w[frame1:]...), w[:frame1]...) }},
		{"frame replayed", func(w []byte) []byte { return append(append([]byte(nil), w[:frame1]...), w[:frame1]...) }},
		{"tag-only frame", func([]byte) []byte { return append([]byte{0, 16}, make([]byte, 16)...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := keyedConn(bytes.NewReader(tc.tamper(bytes.Clone(wire))), nil, 100)
			var err error
			for i := 0; err == nil && i < 3; i++ {
				_, err = c.ReadMessage()
			}
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error = %v, want ErrBadFrame", err)
			}
			if _, again := c.ReadMessage(); !errors.Is(again, ErrBadFrame) {
				t.Fatalf("error after ErrBadFrame = %v, want it again", again)
			}
		})
	}
}

func TestConnEOF(t *testing.T) {
	wire := sealed(t, [][]byte{[]byte("whole"), make([]byte, 200)})
	// A whole frame that ends inside a message: a header announcing 10 bytes, then 3 of them.
	var partial bytes.Buffer
	w := keyedConn(nil, &partial, 1000)
	if err := w.appendPlain([]byte{0, 0, 0, 10, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.sealFrame(); err != nil {
		t.Fatal(err)
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		wire []byte
		want error
	}{
		{"clean", sealed(t, [][]byte{[]byte("whole")}), io.EOF},
		{"inside frame", wire[:len(wire)-10], io.ErrUnexpectedEOF},
		{"inside message", partial.Bytes(), io.ErrUnexpectedEOF},
	} {
		c := keyedConn(bytes.NewReader(tc.wire), nil, 1000)
		var err error
		for err == nil {
			_, err = c.ReadMessage()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// stutterReader returns its chunks one Read at a time, with a timeout error between them.
type stutterReader struct {
	chunks  [][]byte
	timeout bool
}

func (s *stutterReader) Read(p []byte) (int, error) {
	if s.timeout = !s.timeout; s.timeout {
		return 0, os.ErrDeadlineExceeded
	}
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	if s.chunks[0] = s.chunks[0][n:]; len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

func TestConnReadResumesAfterTimeout(t *testing.T) {
	wire := sealed(t, [][]byte{[]byte("one"), []byte("two")}, [][]byte{make([]byte, 70000)})
	var chunks [][]byte
	for i := 0; i < len(wire); i += 7 {
		chunks = append(chunks, wire[i:min(i+7, len(wire))])
	}
	c := keyedConn(&stutterReader{chunks: chunks}, nil, 1<<20)
	var got []int
	timeouts := 0
	for {
		m, err := c.ReadMessage()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			timeouts++
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, len(m))
	}
	if fmt.Sprint(got) != "[3 3 70000]" || timeouts < len(chunks) {
		t.Fatalf("messages %v after %d timeouts; want [3 3 70000]", got, timeouts)
	}
}

// countingWriter counts the Write calls made to it and the largest one.
type countingWriter struct {
	writes, largest int
	buf             bytes.Buffer
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	w.largest = max(w.largest, len(p))
	return w.buf.Write(p)
}

func TestConnWriteBatching(t *testing.T) {
	var w countingWriter
	c := keyedConn(nil, &w, 2<<20)
	batch := make([][]byte, 50)
	for i := range batch {
		batch[i] = testMessage(uint64(i), 1024)
	}
	if err := c.WriteMessages(batch...); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 || w.largest != 2+50*(4+1024)+16 {
		t.Fatalf("50 x 1 KiB: %d writes, largest %d bytes; want one write of one frame", w.writes, w.largest)
	}
	w.writes, w.largest = 0, 0
	if err := c.WriteMessages(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if w.writes < 2 || w.largest > writeFlushSize+2+noise.MaxMsgLen {
		t.Fatalf("1 MiB: %d writes, largest %d bytes", w.writes, w.largest)
	}
	// Every frame but the last of a message is full.
	wire := w.buf.Bytes()[2+50*(4+1024)+16:]
	frames := 0
	for len(wire) > 0 {
		n := int(binary.BigEndian.Uint16(wire))
		if wire = wire[2+n:]; len(wire) > 0 && n != noise.MaxMsgLen {
			t.Fatalf("frame %d has %d bytes, want %d", frames, n, noise.MaxMsgLen)
		}
		frames++
	}
	if want := (4 + 1<<20 + maxFramePlaintext - 1) / maxFramePlaintext; frames != want {
		t.Fatalf("1 MiB message in %d frames, want %d", frames, want)
	}
}

func TestConnAllocations(t *testing.T) {
	const runs = 1000
	batch := make([][]byte, runs+1)
	for i := range batch {
		batch[i] = []byte("a small message")
	}
	pool := NewBufferPool()
	r := keyedPooledConn(bytes.NewReader(sealed(t, batch)), nil, 1000, pool)
	if allocs := testing.AllocsPerRun(runs, func() {
		if _, err := r.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}); allocs != 1 {
		t.Fatalf("ReadMessage allocates %v times per message, want 1 (the message)", allocs)
	}
	r = keyedPooledConn(bytes.NewReader(sealed(t, batch)), nil, 1000, pool)
	if allocs := testing.AllocsPerRun(runs, func() {
		if m, err := r.ReadMessageSlice(); err != nil || string(m) != "a small message" {
			t.Fatalf("ReadMessageSlice = %q, %v", m, err)
		}
	}); allocs != 0 {
		t.Fatalf("ReadMessageSlice allocates %v times per message, want 0", allocs)
	}
	w := keyedPooledConn(nil, io.Discard, 1000, pool)
	if allocs := testing.AllocsPerRun(runs, func() {
		if err := w.WriteMessages(batch[:10]...); err != nil {
			t.Fatal(err)
		}
	}); allocs > 1 {
		t.Fatalf("WriteMessages allocates %v times per batch, want at most 1 (flynn/noise's nonce)", allocs)
	}
}

// FuzzMessageDecoder feeds an arbitrary plaintext stream, in chunks, to a messageDecoder with an arbitrary
// limit, copying the messages or not. It checks that the decoder never panics or stalls, never returns a message over the limit, that
// re-encoding the messages reproduces the input up to the end of the last one, and that it fails only on a
// length over the limit.
func FuzzMessageDecoder(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x05hello\x00\x00\x00\x00"), uint16(100), uint8(3))
	f.Add([]byte("\x80\x00\x00\x00"), uint16(100), uint8(1))
	f.Add([]byte("\x00\x00\x00\x02ab\x00\x00\x00\x03ab"), uint16(2), uint8(0))
	f.Add([]byte("\x00\x00\x00\x05hello\x00\x00\x00\x01x\x00\x00"), uint16(100), uint8(128+6))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16, chunk uint8) {
		d := messageDecoder{max: int(limit)}
		alias := chunk >= 128 // messages whole in a chunk come back as slices of it (Conn.ReadMessageSlice)
		var reencoded []byte
		pos, end := 0, 0 // bytes consumed; bytes up to the end of the last message
		for pos < len(data) {
			in := data[pos:min(pos+int(chunk%32)+1, len(data))]
			n, msg, err := d.feed(in, alias)
			if n < 0 || n > len(in) || (n == 0 && msg == nil && err == nil) {
				t.Fatalf("Feed(%d bytes) consumed %d with no message and no error", len(in), n)
			}
			pos += n
			if err != nil {
				if !errors.Is(err, ErrMessageTooLarge) || msg != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if size := binary.BigEndian.Uint32(data[pos-4 : pos]); size <= uint32(limit) || pos-4 != end {
					t.Fatalf("rejected length %d at %d, limit %d, last message ended at %d", size, pos-4, limit, end)
				}
				return
			}
			if msg != nil {
				if len(msg) > int(limit) {
					t.Fatalf("message of %d bytes over the limit %d", len(msg), limit)
				}
				reencoded = binary.BigEndian.AppendUint32(reencoded, uint32(len(msg)))
				reencoded = append(reencoded, msg...)
				end = pos
			}
		}
		if !bytes.Equal(reencoded, data[:end]) {
			t.Fatalf("re-encoded messages differ from the consumed input")
		}
		if d.midMessage() != (end < len(data)) {
			t.Fatalf("midMessage = %v with %d of %d bytes in complete messages", d.midMessage(), end, len(data))
		}
	})
}

// FuzzReadFrames reads an arbitrary byte stream as the ciphertext side of a Conn keyed with testKey: reading
// must end in an error (io.EOF at the end of the input at best), without panicking or hanging.
func FuzzReadFrames(f *testing.F) {
	f.Add(sealed(f, [][]byte{[]byte("hello"), {}}, [][]byte{make([]byte, 70000)}))
	f.Add(sealed(f, [][]byte{[]byte("hello")})[:10])
	f.Add([]byte{0, 16, 1, 2, 3})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := keyedConn(bytes.NewReader(data), nil, 1<<16)
		// Every message takes at least its 4-byte header from the input, so this bound is never reached.
		for range len(data)/4 + 2 {
			m, err := c.ReadMessage()
			if err != nil {
				return
			}
			if len(m) > 1<<16 {
				t.Fatalf("message of %d bytes over the limit", len(m))
			}
		}
		t.Fatal("no error after reading the whole input")
	})
}

func TestConnCloseWriteEndsOneDirectionOnly(t *testing.T) {
	dc, ac := tcpPair(t)
	ca, cb := handshakeOver(t, dc, ac, testConfig(t, 1), testConfig(t, 2))
	defer ca.Close()
	defer cb.Close()
	setDeadlines(t, ca, cb)
	if err := ca.WriteMessages([]byte("goodbye")); err != nil {
		t.Fatal(err)
	}
	if err := ca.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if m, err := cb.ReadMessage(); err != nil || string(m) != "goodbye" {
		t.Fatalf("read %q, %v: want the message written before the half-close", m, err)
	}
	if _, err := cb.ReadMessage(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the half-close: %v, want io.EOF", err)
	}
	// The other direction still works.
	if err := cb.WriteMessages([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if m, err := ca.ReadMessage(); err != nil || string(m) != "late" {
		t.Fatalf("read %q, %v after our half-close: want the peer's message", m, err)
	}

	p1, p2 := net.Pipe()
	defer p2.Close()
	if err := keyedConn(p1, p1, 1<<10).CloseWrite(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("CloseWrite on a connection without half-close: %v, want ErrUnsupported", err)
	}
}

// A frame that authenticates but carries no data (a tag alone) is a bad frame: the writer never sends one, and
// taking it let a peer make the reader decrypt frames that deliver nothing, without end.
func TestConnRefusesAnAuthenticFrameWithoutData(t *testing.T) {
	sealer := noise.UnsafeNewCipherState(cipherSuiteFor(noise.DH25519), testKey, 0)
	tag, err := sealer.Encrypt(nil, nil, nil)
	if err != nil || len(tag) != tagSize {
		t.Fatalf("sealing nothing: %d bytes, %v", len(tag), err)
	}
	wire := append(binary.BigEndian.AppendUint16(nil, uint16(len(tag))), tag...)
	c := keyedConn(bytes.NewReader(wire), nil, 100)
	if _, err := c.ReadMessage(); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("an authentic frame of no data: %v, want ErrBadFrame", err)
	}
}

// BytesWritten and BytesRead count every transport byte, length prefixes and tags included: the writer's count is
// the bytes on the wire, and the reader's count is the same once it has read them.
func TestConnCountsTheBytesOnTheWire(t *testing.T) {
	var w countingWriter
	writer := keyedConn(nil, &w, 1<<20)
	msgs := [][][]byte{{[]byte("a")}, {make([]byte, 70_000), []byte("bc")}, {nil}}
	if err := writeBatches(writer, msgs); err != nil {
		t.Fatal(err)
	}
	wire := w.buf.Len()
	if got := writer.BytesWritten(); got != uint64(wire) {
		t.Fatalf("BytesWritten = %d, %d bytes written", got, wire)
	}
	reader := keyedConn(bytes.NewReader(w.buf.Bytes()), nil, 1<<20)
	for range 4 {
		if _, err := reader.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reader.ReadMessage(); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
	if got := reader.BytesRead(); got != uint64(wire) {
		t.Fatalf("BytesRead = %d, %d bytes on the wire", got, wire)
	}
}

// failingWriter fails its writes while fail is set, writing nothing.
type failingWriter struct {
	fail bool
	buf  bytes.Buffer
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.fail {
		return 0, os.ErrDeadlineExceeded
	}
	return w.buf.Write(p)
}

// After a failed write the connection stays unusable for writing, as WriteMessages says: a later call returns the
// error and writes nothing, even once the underlying connection writes again (frames after a lost one would
// reach the peer out of their nonce order).
func TestConnWriteErrorIsSticky(t *testing.T) {
	w := &failingWriter{fail: true}
	c := keyedConn(nil, w, 1000)
	first := c.WriteMessages([]byte("lost"))
	if !errors.Is(first, os.ErrDeadlineExceeded) {
		t.Fatalf("write: %v, want the timeout", first)
	}
	w.fail = false
	if err := c.WriteMessages([]byte("after")); !errors.Is(err, os.ErrDeadlineExceeded) || w.buf.Len() != 0 {
		t.Fatalf("write after a failed one: %v, %d bytes written; want the first error and nothing", err, w.buf.Len())
	}
}

// A message over the read limit is refused whether it lies whole in one frame or not, by ReadMessageSlice too: the
// aliasing path returned a message up to a frame's size (64 KiB) whatever MaxMessageSize said.
func TestConnReadMessageSliceKeepsTheLimit(t *testing.T) {
	wire := sealed(t, [][]byte{make([]byte, 5000)})
	for name, read := range map[string]func(*Conn) ([]byte, error){
		"ReadMessage": (*Conn).ReadMessage, "ReadMessageSlice": (*Conn).ReadMessageSlice,
	} {
		c := keyedConn(bytes.NewReader(wire), nil, 4999)
		if m, err := read(c); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("%s of a 5000-byte message, limit 4999: %d bytes, %v; want ErrMessageTooLarge", name, len(m), err)
		}
	}
	d := messageDecoder{max: 10}
	p := append(binary.BigEndian.AppendUint32(nil, 11), make([]byte, 11)...)
	if _, m, err := d.feed(p, true); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("aliased feed of an 11-byte message, limit 10: %d bytes, %v; want ErrMessageTooLarge", len(m), err)
	}
}

// A message's buffer doubles as its bytes come, and never jumps to its claimed length: 64 KiB and a byte of a
// claimed 1 MiB message hold a buffer of 128 KiB, not 1 MiB.
func TestMessageDecoderGrowthStopsAtDouble(t *testing.T) {
	d := messageDecoder{max: 1 << 20}
	if _, _, err := d.Feed(binary.BigEndian.AppendUint32(nil, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if n, m, err := d.Feed(make([]byte, msgStartBuffer+1)); n != msgStartBuffer+1 || m != nil || err != nil {
		t.Fatalf("feed: %d, %d bytes, %v", n, len(m), err)
	}
	if c := cap(d.msg); c > 2*msgStartBuffer {
		t.Fatalf("%d bytes of a claimed 1 MiB message hold a %d-byte buffer, want at most %d", msgStartBuffer+1, c, 2*msgStartBuffer)
	}
}
