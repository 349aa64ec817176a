package session

import (
	"math/bits"
	"sync"
)

// Size classes of BufferPool: capacities are powers of two from minPooledBuffer to maxPooledBuffer. The largest
// serves both a whole transport frame with its prefix (2+65535 bytes) and the biggest write buffer
// (maxWriteBuffer, exactly 128 KiB).
const (
	minPooledBufferShift = 10 // 1 KiB
	maxPooledBufferShift = 17 // 128 KiB
	minPooledBuffer      = 1 << minPooledBufferShift
	maxPooledBuffer      = 1 << maxPooledBufferShift
	numBufferClasses     = maxPooledBufferShift - minPooledBufferShift + 1
)

// BufferPool lends the large read and write buffers of Conns, so that an idle Conn holds only a small fixed
// buffer. Create it with NewBufferPool and share it among the Conns of a node through HandshakeConfig.Buffers.
// It is safe for concurrent use.
//
// Buffers travel as *[]byte: the pointer itself is pooled along with the slice, so that neither Get nor Put
// allocates once the pool is warm.
type BufferPool struct {
	classes [numBufferClasses]sync.Pool // classes[i] holds *[]byte of capacity minPooledBuffer<<i

	// trace, if set, sees every buffer Get hands out and every buffer Put is given (before pooling it); tests
	// use it to count buffers in use and to poison returned ones.
	trace func(p *[]byte, put bool)
}

// NewBufferPool returns an empty pool.
func NewBufferPool() *BufferPool { return &BufferPool{} }

// bufferClass returns the index of the smallest class holding n bytes, or -1 if n exceeds the largest.
func bufferClass(n int) int {
	if n <= minPooledBuffer {
		return 0
	}
	if n > maxPooledBuffer {
		return -1
	}
	return bits.Len(uint(n-1)) - minPooledBufferShift
}

// Get returns a buffer of length n (n >= 0) whose capacity is that of its size class, at least 1 KiB; the
// caller may reslice it within its capacity. A request over 128 KiB gets a new buffer of exactly n bytes. Get
// on a nil pool allocates a new buffer of the same size.
func (p *BufferPool) Get(n int) *[]byte {
	var b *[]byte
	c := bufferClass(n)
	if c >= 0 && p != nil {
		b, _ = p.classes[c].Get().(*[]byte)
	}
	switch {
	case b != nil:
		*b = (*b)[:n]
	case c >= 0:
		s := make([]byte, n, minPooledBuffer<<c)
		b = &s
	default:
		s := make([]byte, n)
		b = &s
	}
	if p != nil && p.trace != nil {
		p.trace(b, false)
	}
	return b
}

// Put gives b back to the pool; the caller must not use b, or any slice of the buffer, afterwards. A buffer
// whose capacity is not one of the pool's size classes is dropped, as is everything given to a nil pool.
func (p *BufferPool) Put(b *[]byte) {
	if p == nil || b == nil {
		return
	}
	if p.trace != nil {
		p.trace(b, true)
	}
	if c := bufferClass(cap(*b)); c >= 0 && cap(*b) == minPooledBuffer<<c {
		p.classes[c].Put(b)
	}
}
