package session

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// A message the decoder assembles from pieces holds no more memory than its bytes: its buffer grows by doubling, up
// to the message's length and not past it.
func TestADecodedMessageHoldsNoMoreThanItsBytes(t *testing.T) {
	const size = msgStartBuffer + msgStartBuffer/2
	d := messageDecoder{max: 1 << 20}
	want := testMessage(3, size)
	in := append(binary.BigEndian.AppendUint32(nil, size), want...)
	var got []byte
	for p := in; len(p) > 0; {
		n, msg, err := d.Feed(p[:min(len(p), 10_000)])
		if err != nil {
			t.Fatal(err)
		}
		p, got = p[n:], msg
	}
	if !bytes.Equal(got, want) || cap(got) != size {
		t.Fatalf("a %d-byte message fed in pieces: %d bytes (equal %v) in a %d-byte buffer", size, len(got), bytes.Equal(got, want), cap(got))
	}
}

// ReadMessageSlice returns a message that is alone in its frame without copying it: the slice points into the
// read buffer.
func TestReadMessageSliceAliasesAMessageAloneInItsFrame(t *testing.T) {
	c := keyedConn(bytes.NewReader(sealed(t, [][]byte{[]byte("alone")})), nil, 4096)
	m, err := c.ReadMessageSlice()
	if err != nil || string(m) != "alone" {
		t.Fatalf("ReadMessageSlice = %q, %v", m, err)
	}
	buf := c.fr.buf()
	for i := range buf {
		buf[i] = '#'
	}
	if string(m) != "#####" {
		t.Fatalf("the message %q is a copy, not a slice of the read buffer", m)
	}
}

// A pooled read buffer goes back once the bytes read ahead fit the small one exactly (smallReadBuffer of them).
func TestReadAheadFillingTheSmallBufferGivesThePooledOneBack(t *testing.T) {
	pool, tr := trackedPool(t)
	// The first frame, 1536 bytes with its prefix, is read into a 2 KiB pooled buffer with the next frame's first
	// 512 bytes; the second frame is 512 bytes whole.
	first := testMessage(1, 1536-2-msgHeaderSize-tagSize)
	second := testMessage(2, 512-2-msgHeaderSize-tagSize)
	c := keyedPooledConn(bytes.NewReader(sealed(t, [][]byte{first}, [][]byte{second})), nil, 4096, pool)
	if m, err := c.ReadMessage(); err != nil || !bytes.Equal(m, first) {
		t.Fatalf("first message: %d bytes, %v", len(m), err)
	}
	if c.fr.w-c.fr.r != smallReadBuffer || tr.inUse() != 0 {
		t.Fatalf("%d bytes read ahead, %d pooled buffers held; want %d and none", c.fr.w-c.fr.r, tr.inUse(), smallReadBuffer)
	}
	if m, err := c.ReadMessage(); err != nil || !bytes.Equal(m, second) {
		t.Fatalf("second message: %d bytes, %v", len(m), err)
	}
}

// Peer returns a copy: changing its ListenAddrs does not change the Conn's.
func TestPeerReturnsACopyOfTheListenAddrs(t *testing.T) {
	c := keyedConn(nil, nil, 4096)
	c.peer.ListenAddrs = []string{"127.0.0.1:4001"}
	c.Peer().ListenAddrs[0] = "changed"
	if got := c.Peer().ListenAddrs[0]; got != "127.0.0.1:4001" {
		t.Fatalf("Peer().ListenAddrs[0] = %q after a caller changed its copy", got)
	}
}
