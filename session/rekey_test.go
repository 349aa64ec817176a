package session

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/actormesh/actormesh/messages"
)

// testCipherState returns a cipher state of the package's suite keyed with k, at nonce 0.
func testCipherState(k [32]byte) *noise.CipherState {
	return noise.UnsafeNewCipherState(cipherSuiteFor(noise.DH25519), k, 0)
}

// testKey2 keys the second direction of the connections made by pipeConns.
var testKey2 = [32]byte{31: 1}

// pipeConns returns two Conns over the ends of a net.Pipe, a's outbound direction keyed with testKey and b's with
// testKey2, each end rekeying both directions every interval frames of its own (0: never).
func pipeConns(tb testing.TB, intervalA, intervalB uint64) (a, b *Conn) {
	tb.Helper()
	pa, pb := net.Pipe()
	tb.Cleanup(func() { pa.Close(); pb.Close() })
	// A safety net, so that a broken exchange fails the test rather than hanging it.
	deadline := time.Now().Add(30 * time.Second)
	if err := errors.Join(pa.SetDeadline(deadline), pb.SetDeadline(deadline)); err != nil {
		tb.Fatal(err)
	}
	a = newConn(pa, frameReader{src: pa}, testCipherState(testKey), testCipherState(testKey2), PeerInfo{}, 1<<20, intervalA)
	b = newConn(pb, frameReader{src: pb}, testCipherState(testKey2), testCipherState(testKey), PeerInfo{}, 1<<20, intervalB)
	return a, b
}

// rekeyBatches returns batches exercising each way WriteMessages frames: one small message to a frame, many small
// messages sharing a frame, messages spanning frames, and batches of many frames flushed more than once.
func rekeyBatches(seed uint64) [][][]byte {
	var batches [][][]byte
	for i := range 40 {
		batches = append(batches, [][]byte{testMessage(seed+uint64(i), 1+i)})
	}
	for i := range 10 {
		batch := make([][]byte, 12)
		for j := range batch {
			batch[j] = testMessage(seed+uint64(100*i+j), 30+j)
		}
		batches = append(batches, batch)
	}
	for i := range 4 {
		batches = append(batches, [][]byte{testMessage(seed, 7), testMessage(seed+uint64(i), 150<<10+i), testMessage(seed, 9)})
	}
	big := make([][]byte, 64)
	for j := range big {
		big[j] = testMessage(seed+uint64(j), 5000+j)
	}
	return append(batches, big, [][]byte{{}})
}

// readBatches reads the messages of batches from c, in order, with ReadMessageSlice if slice is set.
func readBatches(c *Conn, batches [][][]byte, slice bool) error {
	for i, batch := range batches {
		for j, want := range batch {
			read := c.ReadMessage
			if slice {
				read = c.ReadMessageSlice
			}
			got, err := read()
			if err != nil {
				return fmt.Errorf("batch %d, message %d: %w", i, j, err)
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("batch %d, message %d: got %d bytes, want %d", i, j, len(got), len(want))
			}
		}
	}
	return nil
}

// exchange sends batches each way between a and b at once, and returns the first error of the four sides.
func exchange(a, b *Conn, ab, ba [][][]byte) error {
	errs := make(chan error, 4)
	go func() { errs <- writeBatches(a, ab) }()
	go func() { errs <- writeBatches(b, ba) }()
	go func() { errs <- readBatches(b, ab, false) }()
	go func() { errs <- readBatches(a, ba, true) }()
	var err error
	for range 4 {
		err = errors.Join(err, <-errs)
	}
	return err
}

// The rekey is Noise's REKEY: the new key is the first 32 bytes of the AES-GCM seal of 32 zero bytes under the old
// key with the nonce 2^64-1, computed here with crypto/cipher alone; the nonce goes on counting after it.
func TestRekeyIsNoisesRekey(t *testing.T) {
	gcm := func(k [32]byte) cipher.AEAD {
		block, err := aes.NewCipher(k[:])
		if err != nil {
			t.Fatal(err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		return aead
	}
	nonce := func(n uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 4), n) }
	var next [32]byte
	copy(next[:], gcm(testKey).Seal(nil, nonce(1<<64-1), make([]byte, 32), nil))

	tc := newTransportCipher(testCipherState(testKey), 2)
	for n := range uint64(4) {
		key := testKey
		if n >= 2 {
			key = next
		}
		want := gcm(key).Seal(nil, nonce(n), []byte("frame"), nil)
		got, err := tc.encrypt(nil, []byte("frame"))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("frame %d: sealed %x, %v; want %x", n, got, err, want)
		}
	}
	if tc.rekeys != 2 || tc.cs.Nonce() != 4 {
		t.Fatalf("after 4 frames at an interval of 2: %d rekeys, nonce %d; want 2 and 4", tc.rekeys, tc.cs.Nonce())
	}
}

// Two Conns rekeying every 2 frames exchange every kind of batch both ways at once, across dozens of rekeys, some
// inside one WriteMessages call and inside one message.
func TestConnRekeysAcrossManyFramesBothWays(t *testing.T) {
	a, b := pipeConns(t, 2, 2)
	if err := exchange(a, b, rekeyBatches(1), rekeyBatches(2)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name       string
		send, recv *transportCipher
	}{{"a to b", &a.send, &b.recv}, {"b to a", &b.send, &a.recv}} {
		frames := d.send.cs.Nonce()
		if d.send.rekeys != frames/2 || d.recv.rekeys != d.send.rekeys || d.recv.cs.Nonce() != frames || d.send.rekeys < 30 {
			t.Errorf("%s: %d frames, %d rekeys sealing and %d opening; want %d both ways, and at least 30",
				d.name, frames, d.send.rekeys, d.recv.rekeys, frames/2)
		}
		if d.send.cs.UnsafeKey() != d.recv.cs.UnsafeKey() || d.send.cs.UnsafeKey() == testKey || d.send.cs.UnsafeKey() == testKey2 {
			t.Errorf("%s: the two ends' keys differ or were never replaced", d.name)
		}
	}
}

// rekeyingConn returns a Conn reading from r and writing to w, both directions keyed with testKey, that rekeys every
// interval frames (0: never).
func rekeyingConn(r io.Reader, w io.Writer, interval uint64) *Conn {
	nc := &memConn{r: r, w: w}
	return newConn(nc, frameReader{src: nc}, testCipherState(testKey), testCipherState(testKey), PeerInfo{}, 1<<20, interval)
}

// A peer that does not rekey when it should is caught at the first frame it seals under the old key: that frame
// fails to open, ErrBadFrame (which the node answers with a PROTOCOL_ERROR disconnect), and so do later reads.
// The frames before it are read.
func TestAPeerThatDoesNotRekeyIsCaught(t *testing.T) {
	for _, tc := range []struct {
		name             string
		writer, reader   uint64
		hint             string
		framesBeforeFail int
	}{
		{"the writer does not rekey", 0, 4, "a peer that does not rekey?", 4},
		{"the reader does not rekey", 4, 0, "", 4},
		{"the two disagree on the interval", 5, 4, "a peer that does not rekey?", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wire bytes.Buffer
			w := rekeyingConn(nil, &wire, tc.writer)
			for i := range 8 {
				if err := w.WriteMessages([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			r := rekeyingConn(&wire, nil, tc.reader)
			for i := range tc.framesBeforeFail {
				if m, err := r.ReadMessage(); err != nil || !bytes.Equal(m, []byte{byte(i)}) {
					t.Fatalf("frame %d: %x, %v", i, m, err)
				}
			}
			_, err := r.ReadMessage()
			if !errors.Is(err, ErrBadFrame) || !strings.Contains(err.Error(), tc.hint) {
				t.Fatalf("frame %d: error %v, want ErrBadFrame saying %q", tc.framesBeforeFail, err, tc.hint)
			}
			if _, again := r.ReadMessage(); !errors.Is(again, ErrBadFrame) {
				t.Fatalf("the read after: %v, want ErrBadFrame again", again)
			}
		})
	}
}

// A frame that fails to open for another cause than a missed rekey (corrupted on the way) is ErrBadFrame without the
// rekey hint, which only the first frame under a new key gets: the connection's first frame, one inside an
// interval, and any of a connection that never rekeys.
func TestABadFrameOtherThanTheFirstUnderANewKeyHasNoRekeyHint(t *testing.T) {
	const frameSize = 2 + msgHeaderSize + 1 + tagSize // a one-byte message in a frame of its own
	for _, tc := range []struct {
		name     string
		interval uint64
		bad      int
	}{{"the first frame", 4, 0}, {"a frame inside an interval after a rekey", 4, 5}, {"a connection that never rekeys", 0, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			var wire bytes.Buffer
			w := rekeyingConn(nil, &wire, tc.interval)
			for i := range 8 {
				if err := w.WriteMessages([]byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
			}
			raw := wire.Bytes()
			if len(raw) != 8*frameSize {
				t.Fatalf("%d bytes on the wire, want 8 frames of %d", len(raw), frameSize)
			}
			raw[tc.bad*frameSize+2] ^= 1 // corrupted on the way
			r := rekeyingConn(&wire, nil, tc.interval)
			for i := range tc.bad {
				if _, err := r.ReadMessage(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, err := r.ReadMessage()
			if !errors.Is(err, ErrBadFrame) || strings.Contains(err.Error(), "rekey") {
				t.Fatalf("the corrupted frame %d: %v, want ErrBadFrame with no rekey hint", tc.bad, err)
			}
		})
	}
}

// The nonce goes on counting across rekeys: its exhaustion fails the write (and the read) with noise.ErrMaxNonce
// rather than wrapping to 0, which would reuse nonces under one key.
func TestNonceExhaustionIsAnErrorAcrossRekeys(t *testing.T) {
	var wire bytes.Buffer
	w := rekeyingConn(nil, &wire, 2)
	w.send.cs.SetNonce(noise.MaxNonce - 2)
	for i := range 3 {
		if err := w.WriteMessages([]byte{byte(i)}); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := w.WriteMessages([]byte("one too many")); !errors.Is(err, noise.ErrMaxNonce) {
		t.Fatalf("the frame past the last nonce: %v, want noise.ErrMaxNonce", err)
	}
	if w.send.cs.Nonce() != noise.MaxNonce+1 || w.send.rekeys != 1 {
		t.Fatalf("nonce %d after %d rekeys, want %d after 1", w.send.cs.Nonce(), w.send.rekeys, uint64(noise.MaxNonce+1))
	}

	r := rekeyingConn(&wire, nil, 2)
	r.recv.cs.SetNonce(noise.MaxNonce - 2)
	for i := range 3 {
		if m, err := r.ReadMessage(); err != nil || !bytes.Equal(m, []byte{byte(i)}) {
			t.Fatalf("frame %d: %x, %v", i, m, err)
		}
	}
	// A frame past the last nonce cannot be opened, whatever the peer sends.
	wire.Write([]byte{0, 17})
	wire.Write(make([]byte, 17))
	if _, err := r.ReadMessage(); !errors.Is(err, ErrBadFrame) || !errors.Is(err, noise.ErrMaxNonce) {
		t.Fatalf("a read past the last nonce: %v, want ErrBadFrame wrapping noise.ErrMaxNonce", err)
	}
}

// Two nodes of this build use the smaller of their rekey intervals on both directions, and rekey as they go.
func TestHandshakeNegotiatesTheSmallerRekeyInterval(t *testing.T) {
	for _, dialerInitiates := range []bool{true, false} {
		a, b := testConfig(t, 1), testConfig(t, 2)
		a.RekeyInterval = MinRekeyInterval
		dr, ar := runHandshakes(t, a, b, dialerInitiates, NodeID{})
		if dr.err != nil || ar.err != nil {
			t.Fatal(dr.err, ar.err)
		}
		if got := dr.conn.Peer().RekeyInterval; got != DefaultRekeyInterval {
			t.Fatalf("the dialer's PeerInfo.RekeyInterval = %d, want the default %d", got, DefaultRekeyInterval)
		}
		if got := ar.conn.Peer().RekeyInterval; got != MinRekeyInterval {
			t.Fatalf("the acceptor's PeerInfo.RekeyInterval = %d, want %d", got, MinRekeyInterval)
		}
		for _, c := range []*Conn{dr.conn, ar.conn} {
			if got := c.RekeyInterval(); got != MinRekeyInterval {
				t.Fatalf("RekeyInterval() = %d, want the smaller, %d", got, MinRekeyInterval)
			}
		}
		// Two rekeys and a frame each way, one message to a frame.
		one := func(seed uint64) [][][]byte {
			batches := make([][][]byte, 2*MinRekeyInterval+1)
			for i := range batches {
				batches[i] = [][]byte{testMessage(seed+uint64(i), 16)}
			}
			return batches
		}
		if err := exchange(dr.conn, ar.conn, one(1), one(2)); err != nil {
			t.Fatal(err)
		}
		if dr.conn.send.rekeys != 2 || ar.conn.recv.rekeys != 2 || ar.conn.send.rekeys != 2 || dr.conn.recv.rekeys != 2 {
			t.Fatalf("rekeys: dialer %d sealing, %d opening; acceptor %d, %d; want 2 each", dr.conn.send.rekeys,
				dr.conn.recv.rekeys, ar.conn.send.rekeys, ar.conn.recv.rekeys)
		}
		for _, c := range []*Conn{dr.conn, ar.conn} {
			if sealed, opened := c.Rekeys(); sealed != 2 || opened != 2 {
				t.Fatalf("Rekeys() = %d sealed, %d opened; want 2 each", sealed, opened)
			}
		}
		dr.conn.Close()
		ar.conn.Close()
	}
}

// writeRawFrame seals plaintext with cs as one transport frame and writes it to conn.
func writeRawFrame(conn net.Conn, cs *noise.CipherState, plaintext []byte) error {
	ct, err := cs.Encrypt(nil, nil, plaintext)
	if err == nil {
		_, err = conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(ct))), ct...))
	}
	return err
}

// readRawFrame reads one transport frame from conn and opens it with cs.
func readRawFrame(conn net.Conn, cs *noise.CipherState) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(conn, frame); err != nil {
		return nil, err
	}
	return cs.Decrypt(nil, nil, frame)
}

// A peer whose payload has no rekey interval, as a build older than rekeying sends, gets a connection that never
// rekeys, either way; a peer advertising a smaller interval than the local one has it used both ways. The peer is
// rawPeer, on flynn/noise's own cipher states, rekeying by hand (noise.CipherState.Rekey) when it advertised an
// interval.
func TestRekeyingWithAnotherBuild(t *testing.T) {
	for _, tc := range []struct {
		name          string
		local, remote uint64
		want          uint64
	}{
		{"an old peer", MinRekeyInterval, 0, 0},
		{"a peer with a smaller interval", DefaultRekeyInterval, MinRekeyInterval, MinRekeyInterval},
	} {
		for _, localInitiates := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/local initiator=%v", tc.name, localInitiates), func(t *testing.T) {
				lc, rc := tcpPair(t)
				if err := rc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
					t.Fatal(err)
				}
				type rawResult struct {
					send, recv *noise.CipherState
					err        error
				}
				done := make(chan rawResult, 1)
				go func() {
					send, recv, err := rawPeer(rc, !localInitiates, testIdentity(t, 1), func(p *messages.HandshakePayload) {
						p.RekeyInterval = tc.remote
					})
					done <- rawResult{send, recv, err}
				}()
				cfg := testConfig(t, 2)
				cfg.RekeyInterval = int(tc.local)
				c, err := Handshake(context.Background(), lc, cfg, localInitiates, NodeID{})
				raw := <-done
				if err != nil || raw.err != nil {
					t.Fatal(err, raw.err)
				}
				defer c.Close()
				if c.RekeyInterval() != tc.want || c.Peer().RekeyInterval != tc.remote {
					t.Fatalf("RekeyInterval() = %d, the peer's %d; want %d, %d", c.RekeyInterval(), c.Peer().RekeyInterval, tc.want, tc.remote)
				}
				// Two intervals of MinRekeyInterval and more each way, one message to a frame.
				frames := 2*MinRekeyInterval + 3
				rawRekey := func(cs *noise.CipherState, frame int) {
					if tc.remote != 0 && uint64(frame+1)%tc.remote == 0 {
						cs.Rekey()
					}
				}
				written := make(chan error, 1)
				go func() {
					for i := range frames {
						if err := c.WriteMessages(binary.BigEndian.AppendUint32(nil, uint32(i))); err != nil {
							written <- err
							return
						}
					}
					written <- nil
				}()
				for i := range frames {
					pt, err := readRawFrame(rc, raw.recv)
					if err != nil || !bytes.Equal(pt, binary.BigEndian.AppendUint32([]byte{0, 0, 0, 4}, uint32(i))) {
						t.Fatalf("the raw peer's frame %d: %x, %v", i, pt, err)
					}
					rawRekey(raw.recv, i)
				}
				if err := <-written; err != nil {
					t.Fatal(err)
				}
				go func() {
					for i := range frames {
						if err := writeRawFrame(rc, raw.send, binary.BigEndian.AppendUint32([]byte{0, 0, 0, 4}, uint32(i))); err != nil {
							written <- err
							return
						}
						rawRekey(raw.send, i)
					}
					written <- nil
				}()
				for i := range frames {
					if m, err := c.ReadMessage(); err != nil || binary.BigEndian.Uint32(m) != uint32(i) {
						t.Fatalf("message %d: %x, %v", i, m, err)
					}
				}
				if err := <-written; err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// BenchmarkConnRekey seals 1 KiB frames with no rekeying, rekeying at the default and at the smallest interval,
// and rekeying at every frame (the cost of one rekey on top of a frame's).
func BenchmarkConnRekey(b *testing.B) {
	for _, interval := range []uint64{0, DefaultRekeyInterval, MinRekeyInterval, 1} {
		b.Run(fmt.Sprintf("interval=%d", interval), func(b *testing.B) {
			tc := newTransportCipher(testCipherState(testKey), interval)
			plain := make([]byte, 1024)
			out := make([]byte, 0, len(plain)+tagSize)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.encrypt(out, plain); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
