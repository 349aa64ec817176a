package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flynn/noise"
)

// Errors of Conn.
var (
	// ErrMessageTooLarge means an application message exceeds the connection's MaxMessageSize.
	ErrMessageTooLarge = errors.New("session: message too large")
	// ErrBadFrame means the peer sent a malformed or unauthentic transport frame.
	ErrBadFrame = errors.New("session: bad frame")
)

const (
	// tagSize is the size of the AEAD authentication tag of each Noise transport frame.
	tagSize = 16
	// maxFramePlaintext is the most plaintext one transport frame carries.
	maxFramePlaintext = noise.MaxMsgLen - tagSize
	// msgHeaderSize is the size of the length prefix of an application message.
	msgHeaderSize = 4
	// smallReadBuffer is the size of the fixed read buffer every connection keeps, the only one an idle
	// connection holds. It serves the blocking read for the next frame's header, and whole frames of up to
	// smallReadBuffer-2 bytes: every handshake message of the usual size (a few hundred bytes) and a frame of a
	// few small control messages. A larger frame is read into a pooled buffer. 512 bytes per connection end is
	// 1.6 MB for 3200 of them, where a 4 KiB buffer was 13 MB.
	smallReadBuffer = 512
	// writeFlushSize is how many buffered bytes make WriteMessages write them out before packing more frames.
	writeFlushSize = 64 << 10
	// maxWriteBuffer is the most a write buffer holds: just under writeFlushSize of sealed frames, then one whole
	// frame with its prefix and tag. It is exactly 128 KiB.
	maxWriteBuffer = writeFlushSize - 1 + 2 + noise.MaxMsgLen
)

// The largest pooled buffer holds a whole write buffer and a whole frame (these fail to compile otherwise).
const (
	_ = uint(maxPooledBuffer - maxWriteBuffer)
	_ = uint(maxPooledBuffer - 2 - noise.MaxMsgLen)
)

// Conn is an authenticated, encrypted connection carrying whole application messages. It is returned by
// Handshake. One goroutine may call ReadMessage while another calls WriteMessages; Close and the deadline
// setters may be called from any goroutine.
//
// A Conn holds a large buffer only while it needs one: for reading, while the frame being read or the bytes read
// ahead do not fit a small fixed buffer; for writing, during WriteMessages. Large buffers come from
// HandshakeConfig.Buffers and go back to it. An idle Conn holds only the small buffer.
type Conn struct {
	nc        net.Conn
	peer      PeerInfo
	maxMsg    int // read limit
	maxSend   int // write limit: maxMsg, or less if the peer reads less
	closeOnce sync.Once
	closeErr  error

	// Read side, owned by the reading goroutine.
	fr      frameReader
	recv    transportCipher
	dec     messageDecoder
	pending []byte // decrypted plaintext not yet fed to dec; aliases fr's buffer
	rerr    error  // sticky: the inbound stream is broken

	// Write side, owned by the writing goroutine. wbuf and wpooled are nil between calls of WriteMessages.
	send       transportCipher
	bufs       *BufferPool
	wpooled    *[]byte // the pooled buffer under wbuf
	wbuf       []byte  // sealed frames, then the open frame's header and plaintext
	frameStart int     // offset in wbuf of the open frame's length prefix, -1 if none
	werr       error   // sticky: the outbound stream is broken

	// bytesRead and bytesWritten count transport bytes (frames with their length prefix and tag) since the
	// handshake; they are read from any goroutine.
	bytesRead, bytesWritten atomic.Uint64
	// rekeysOpened and rekeysSealed are recv's and send's rekey counts, published for Rekeys.
	rekeysOpened, rekeysSealed atomic.Uint64
}

// newConn returns the Conn over nc after a handshake; fr holds what was read past the handshake, and the Conn
// takes its write buffers from fr's pool too. Both directions rekey every rekey frames (0: never).
func newConn(nc net.Conn, fr frameReader, send, recv *noise.CipherState, peer PeerInfo, maxMsg int, rekey uint64) *Conn {
	return &Conn{
		nc:         nc,
		peer:       peer,
		maxMsg:     maxMsg,
		maxSend:    sendLimit(maxMsg, peer.MaxMessageSize),
		fr:         fr,
		recv:       newTransportCipher(recv, rekey),
		dec:        messageDecoder{max: maxMsg},
		send:       newTransportCipher(send, rekey),
		bufs:       fr.pool,
		frameStart: -1,
	}
}

// BytesRead counts the bytes of transport frames (length prefix, ciphertext and tag) read
// since the handshake ended; the handshake itself is not counted. Safe to call from any goroutine.
func (c *Conn) BytesRead() uint64 { return c.bytesRead.Load() }

// BytesWritten counts the transport bytes written since the handshake ended, as BytesRead does for reads.
func (c *Conn) BytesWritten() uint64 { return c.bytesWritten.Load() }

// Peer returns what the peer proved and declared in the handshake.
func (c *Conn) Peer() PeerInfo {
	p := c.peer
	p.ListenAddrs = slices.Clone(p.ListenAddrs)
	return p
}

// RemoteID returns the peer's NodeID.
func (c *Conn) RemoteID() NodeID { return c.peer.ID }

// LocalAddr returns the local network address of the underlying connection.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the remote network address of the underlying connection.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetReadDeadline sets the deadline of ReadMessage; a read that timed out may be retried.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of WriteMessages; after a write timed out the connection is unusable
// for writing, since part of a frame may have been sent.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }

// sendLimit is the largest message a Conn writes: its own limit, or the peer's if smaller (0: not known).
func sendLimit(local, peer int) int {
	if peer > 0 {
		return min(local, peer)
	}
	return local
}

// RekeyInterval returns how many transport frames each direction of the connection seals under one key before
// both ends rekey it: the smaller of HandshakeConfig.RekeyInterval and the peer's (PeerInfo.RekeyInterval), or 0
// when the peer is a build that does not rekey, in which case neither direction does.
func (c *Conn) RekeyInterval() uint64 { return c.send.interval }

// Rekeys returns how many times each direction of the connection has replaced its key so far: sealed counts the
// rekeys of the frames this end writes, opened those of the frames it reads. Safe to call from any goroutine.
func (c *Conn) Rekeys() (sealed, opened uint64) { return c.rekeysSealed.Load(), c.rekeysOpened.Load() }

// MaxMessageSize returns the largest application message this connection reads (HandshakeConfig.MaxMessageSize).
func (c *Conn) MaxMessageSize() int { return c.maxMsg }

// MaxSendSize returns the largest application message this connection writes: MaxMessageSize, or the peer's
// limit (PeerInfo.MaxMessageSize) if that is smaller. A larger message would have the peer close the connection.
func (c *Conn) MaxSendSize() int { return c.maxSend }

// Buffers returns the pool the connection borrows its buffers from (HandshakeConfig.Buffers; nil if none): its
// user may lend the messages it writes from it too.
func (c *Conn) Buffers() *BufferPool { return c.bufs }

// CloseWrite ends the outbound stream after what was written (a TCP half-close: the peer reads io.EOF after the last
// message) while reads go on. It returns an error wrapping errors.ErrUnsupported when the underlying connection
// cannot half-close.
func (c *Conn) CloseWrite() error {
	cw, ok := c.nc.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("session: close write on %T: %w", c.nc, errors.ErrUnsupported)
	}
	return cw.CloseWrite()
}

// Close closes the underlying connection, unblocking ReadMessage and WriteMessages. Calls after the first
// return the first call's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.nc.Close() })
	return c.closeErr
}

// ReadMessage returns the next application message; the caller owns it. It returns io.EOF when the peer
// closed the connection between messages, an error wrapping ErrMessageTooLarge for a message over
// MaxMessageSize (before allocating it) and one wrapping ErrBadFrame for a malformed or tampered frame; after
// those two the connection is unusable for reading.
func (c *Conn) ReadMessage() ([]byte, error) { return c.readMessage(false) }

// ReadMessageSlice is ReadMessage for a caller that is done with each message before it reads the next, as
// bufio.Reader.ReadSlice: the message may point into the connection's read buffer, and it is valid only until
// the next call of ReadMessage or ReadMessageSlice. It saves copying each message that lies whole in one
// transport frame (most do); one that spans frames is assembled in a new buffer, as ReadMessage does.
func (c *Conn) ReadMessageSlice() ([]byte, error) { return c.readMessage(true) }

func (c *Conn) readMessage(alias bool) ([]byte, error) {
	if c.rerr != nil {
		return nil, c.rerr
	}
	for {
		if len(c.pending) > 0 {
			n, msg, err := c.dec.feed(c.pending, alias)
			c.pending = c.pending[n:]
			if err != nil {
				return nil, c.failRead(err)
			}
			if msg != nil {
				// A copied msg leaves nothing pointing into the read buffer; an aliased one may, and the buffer
				// is released by the next read of a frame (frameReader.next), after the caller is done with it.
				if len(c.pending) == 0 && !alias {
					c.pending = nil
					c.fr.release()
				}
				return msg, nil
			}
		}
		c.pending = nil // readFrame may give back the buffer pending pointed into
		pt, err := c.readFrame()
		if err != nil {
			if errors.Is(err, ErrBadFrame) {
				return nil, c.failRead(err)
			}
			return nil, err
		}
		c.pending = pt
	}
}

// failRead makes err sticky for later reads and gives back the read buffer, if pooled: nothing more is read.
func (c *Conn) failRead(err error) error {
	c.rerr = err
	c.pending = nil
	c.fr.discard()
	return err
}

// readFrame reads and decrypts the next transport frame, in place in the read buffer.
func (c *Conn) readFrame() ([]byte, error) {
	ct, err := c.fr.next(noise.MaxMsgLen)
	switch {
	case errors.Is(err, io.EOF) && c.dec.midMessage():
		return nil, fmt.Errorf("session: read: connection closed inside a message: %w", io.ErrUnexpectedEOF)
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case err != nil:
		return nil, fmt.Errorf("session: read: %w", err)
	case len(ct) <= tagSize:
		return nil, fmt.Errorf("%w: %d-byte frame carries no data", ErrBadFrame, len(ct))
	}
	c.bytesRead.Add(uint64(2 + len(ct)))
	fresh := c.recv.freshKey()
	pt, err := c.recv.decrypt(ct[:0], ct)
	if err != nil && fresh {
		return nil, fmt.Errorf("%w: the first frame after rekey %d: %w (a peer that does not rekey?)", ErrBadFrame, c.recv.rekeys, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	if c.recv.freshKey() {
		c.rekeysOpened.Store(c.recv.rekeys)
	}
	return pt, nil
}

// WriteMessages writes msgs, in order, packing them into as few transport frames as possible. A batch that
// fits the internal buffer (64 KiB) goes out in a single write on the underlying connection. If a message
// exceeds MaxSendSize it writes nothing and returns an error wrapping ErrMessageTooLarge. After a failed
// write the connection is unusable for writing.
func (c *Conn) WriteMessages(msgs ...[]byte) error {
	for i, m := range msgs {
		if len(m) > c.maxSend {
			return fmt.Errorf("%w: message %d of the batch has %d bytes, limit %d",
				ErrMessageTooLarge, i, len(m), c.maxSend)
		}
	}
	if c.werr != nil {
		return c.werr
	}
	if len(msgs) == 0 {
		return nil
	}
	c.wpooled = c.bufs.Get(writeBufferSize(msgs))
	c.wbuf = (*c.wpooled)[:0]
	err := c.writeBatch(msgs)
	c.bufs.Put(c.wpooled) // nc.Write does not retain the buffer (io.Writer's contract)
	c.wpooled, c.wbuf, c.frameStart = nil, nil, -1
	return c.failWrite(err)
}

// writeBufferSize returns the size of the buffer that holds everything WriteMessages(msgs...) buffers at once:
// the whole batch in frames if it is smaller than maxWriteBuffer, else maxWriteBuffer.
func writeBufferSize(msgs [][]byte) int {
	plain := 0
	for _, m := range msgs {
		if plain += msgHeaderSize + len(m); plain >= maxWriteBuffer {
			return maxWriteBuffer
		}
	}
	frames := (plain + maxFramePlaintext - 1) / maxFramePlaintext
	return min(plain+frames*(2+tagSize), maxWriteBuffer)
}

// writeBatch frames, seals and writes msgs through wbuf.
func (c *Conn) writeBatch(msgs [][]byte) error {
	var hdr [msgHeaderSize]byte
	for _, m := range msgs {
		binary.BigEndian.PutUint32(hdr[:], uint32(len(m)))
		if err := c.appendPlain(hdr[:]); err != nil {
			return err
		}
		if err := c.appendPlain(m); err != nil {
			return err
		}
	}
	if err := c.sealFrame(); err != nil {
		return err
	}
	return c.flush()
}

// appendPlain adds p to the outbound plaintext stream, sealing frames as they fill up.
func (c *Conn) appendPlain(p []byte) error {
	for len(p) > 0 {
		if c.frameStart < 0 {
			c.frameStart = len(c.wbuf)
			c.wbuf = append(c.wbuf, 0, 0)
		}
		room := maxFramePlaintext - (len(c.wbuf) - c.frameStart - 2)
		n := min(room, len(p))
		c.wbuf = append(c.wbuf, p[:n]...)
		p = p[n:]
		if n == room {
			if err := c.sealFrame(); err != nil {
				return err
			}
		}
	}
	return nil
}

// sealFrame encrypts the open frame in place and writes the buffer out if it is full enough.
func (c *Conn) sealFrame() error {
	if c.frameStart < 0 {
		return nil
	}
	c.wbuf = slices.Grow(c.wbuf, tagSize) // room for the tag, so that sealing happens in place
	start := c.frameStart + 2
	ct, err := c.send.encrypt(c.wbuf[start:start], c.wbuf[start:])
	if err != nil {
		return fmt.Errorf("session: encrypt: %w", err)
	}
	if c.send.freshKey() {
		c.rekeysSealed.Store(c.send.rekeys)
	}
	binary.BigEndian.PutUint16(c.wbuf[c.frameStart:], uint16(len(ct)))
	c.wbuf = c.wbuf[:start+len(ct)]
	c.frameStart = -1
	if len(c.wbuf) >= writeFlushSize {
		return c.flush()
	}
	return nil
}

// flush writes the sealed frames out.
func (c *Conn) flush() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	n, err := c.nc.Write(c.wbuf)
	c.bytesWritten.Add(uint64(n))
	c.wbuf = c.wbuf[:0]
	if err != nil {
		return fmt.Errorf("session: write: %w", err)
	}
	return nil
}

// failWrite makes err, if any, sticky for later writes.
func (c *Conn) failWrite(err error) error {
	if err != nil {
		c.werr = err
	}
	return err
}

// frameReader reads frames, each a 2-byte big-endian length and that many bytes, from src through its own
// buffer, so that the handshake and the Conn after it share what was read ahead. It reads into the fixed small
// buffer; a frame that does not fit gets a buffer from pool (nil: newly allocated), which release gives back.
// Copying a frameReader moves its state; the copy from which it was made must not be used any more.
type frameReader struct {
	src  io.Reader
	pool *BufferPool
	big  *[]byte // the pooled buffer in use, its length its capacity; nil while small is in use
	r, w int     // unread bytes are buf()[r:w]

	small [smallReadBuffer]byte
}

// errFrameTooLong is returned by frameReader.next for a frame over its limit.
var errFrameTooLong = errors.New("frame too long")

// buf returns the buffer in use.
func (f *frameReader) buf() []byte {
	if f.big != nil {
		return *f.big
	}
	return f.small[:]
}

// next returns the body of the next frame; it stays valid until the next call of next, release or discard. A
// frame longer than limit is an error. After a read error (e.g. a timeout) nothing is consumed, so next may be
// called again. It returns io.EOF only if src ended at a frame boundary, io.ErrUnexpectedEOF if it ended
// inside a frame.
func (f *frameReader) next(limit int) ([]byte, error) {
	f.release() // the previous body is dead: an idle reader waits on the small buffer
	if err := f.fill(2); err != nil {
		return nil, err
	}
	buf := f.buf()
	n := int(binary.BigEndian.Uint16(buf[f.r:]))
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLong, n, limit)
	}
	if err := f.fill(2 + n); err != nil {
		return nil, err
	}
	buf = f.buf() // fill may have switched buffers
	body := buf[f.r+2 : f.r+2+n]
	f.r += 2 + n
	return body, nil
}

// release goes back to the small buffer if the unread bytes fit it, giving the pooled buffer back. The caller
// must hold no slice of the buffer (such as the last body returned by next).
func (f *frameReader) release() {
	if f.big == nil || f.w-f.r > len(f.small) {
		return
	}
	f.w, f.r = copy(f.small[:], (*f.big)[f.r:f.w]), 0
	f.pool.Put(f.big)
	f.big = nil
}

// discard drops the unread bytes and gives the pooled buffer back, for a reader that reads no more. The caller
// must hold no slice of the buffer.
func (f *frameReader) discard() {
	f.pool.Put(f.big)
	f.big = nil
	f.r, f.w = 0, 0
}

// fill makes at least n bytes (n <= 2+65535) readable in buf()[r:w], reading ahead as far as the buffer goes.
func (f *frameReader) fill(n int) error {
	for empty := 0; f.w-f.r < n; {
		f.makeRoom(n)
		buf := f.buf()
		m, err := f.src.Read(buf[f.w:])
		f.w += m
		switch {
		case f.w-f.r >= n:
			return nil
		case errors.Is(err, io.EOF) && f.w > f.r:
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		case m == 0:
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// frameFirstBuffer is the first pooled buffer a frame larger than the small one is read into; the frame's own size
// is taken only once that buffer is full. A frame's length is a claim, not bytes held: 3 bytes claiming 64 KiB
// took a 128 KiB buffer at once, held until the connection's idle timeout (an audit's finding: 17 times an idle
// connection's memory, for each connection an attacker opened).
const frameFirstBuffer = 16 << 10

// makeRoom makes room to read into for a fill of n bytes. The unread bytes move to the front of the buffer when the
// n bytes fit it; a larger pooled buffer (frameFirstBuffer at first, then one for n) is taken only once the one in
// use is full, and the previous one goes back to the pool.
func (f *frameReader) makeRoom(n int) {
	buf := f.buf()
	if len(buf) >= n {
		if len(buf)-f.r < n {
			f.w = copy(buf, buf[f.r:f.w])
			f.r = 0
		}
		return
	}
	if f.w < len(buf) {
		return // room to read into: a larger buffer once this one is full, not on the word of a frame's length
	}
	want := n
	if len(buf) < frameFirstBuffer {
		want = min(n, frameFirstBuffer)
	}
	big := f.pool.Get(want)
	*big = (*big)[:cap(*big)] // read ahead as far as the buffer goes
	f.w = copy(*big, buf[f.r:f.w])
	f.r = 0
	f.pool.Put(f.big) // no-op for the small buffer
	f.big = big
}

// messageDecoder splits the decrypted plaintext stream into application messages: each a 4-byte big-endian
// length and that many bytes. It does no I/O. A length over max is rejected before the message is allocated, and
// the buffer of a message grows as its bytes arrive (from msgStartBuffer), so that a peer claiming a large message
// makes the node hold no more memory than the bytes it actually sent.
type messageDecoder struct {
	max  int
	hdr  [msgHeaderSize]byte
	nhdr int    // bytes of hdr filled
	msg  []byte // the bytes of the message being filled, nil while reading a header
	want int    // the length of the message being filled
	err  error  // sticky
}

// msgStartBuffer is the most a message's buffer holds before its bytes arrive.
const msgStartBuffer = 64 << 10

// Feed consumes bytes of p until a message is complete or p is used up. It returns the number of bytes
// consumed and the completed message (non-nil, possibly empty) or nil if more input is needed. The message is
// newly allocated; p is not retained. A message length over the limit gives an error wrapping
// ErrMessageTooLarge, which every later call returns too.
func (d *messageDecoder) Feed(p []byte) (int, []byte, error) { return d.feed(p, false) }

// feed is Feed; with alias set, a message that p holds whole, its header included, is returned as a slice of p
// rather than a copy.
func (d *messageDecoder) feed(p []byte, alias bool) (int, []byte, error) {
	if d.err != nil {
		return 0, nil, d.err
	}
	if alias && d.msg == nil && d.nhdr == 0 && len(p) >= msgHeaderSize {
		if size := binary.BigEndian.Uint32(p); uint64(size) <= uint64(d.max) && uint64(size) <= uint64(len(p)-msgHeaderSize) {
			n := msgHeaderSize + int(size)
			return n, p[msgHeaderSize:n:n], nil
		}
	}
	consumed := 0
	if d.msg == nil {
		k := copy(d.hdr[d.nhdr:], p)
		d.nhdr += k
		consumed += k
		p = p[k:]
		if d.nhdr < msgHeaderSize {
			return consumed, nil, nil
		}
		size := binary.BigEndian.Uint32(d.hdr[:])
		if uint64(size) > uint64(d.max) {
			d.err = fmt.Errorf("%w: peer sent a %d-byte message, limit %d", ErrMessageTooLarge, size, d.max)
			return consumed, nil, d.err
		}
		d.want = int(size)
		d.msg = make([]byte, 0, min(d.want, msgStartBuffer))
	}
	k := min(len(p), d.want-len(d.msg))
	if len(d.msg)+k > cap(d.msg) { // double, up to the message's length
		grown := make([]byte, len(d.msg), min(d.want, max(2*cap(d.msg), len(d.msg)+k)))
		copy(grown, d.msg)
		d.msg = grown
	}
	d.msg = append(d.msg, p[:k]...)
	consumed += k
	if len(d.msg) < d.want {
		return consumed, nil, nil
	}
	msg := d.msg
	d.msg, d.nhdr = nil, 0
	return consumed, msg, nil
}

// midMessage reports whether the decoder holds part of a message.
func (d *messageDecoder) midMessage() bool { return d.nhdr > 0 || d.msg != nil }
