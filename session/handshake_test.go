package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// tcpPair returns the two ends of a TCP connection on 127.0.0.1; both are closed when the test ends.
func tcpPair(tb testing.TB) (dialer, acceptor net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	dialer, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	acceptor = <-accepted
	if acceptor == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { dialer.Close(); acceptor.Close() })
	return dialer, acceptor
}

type handshakeResult struct {
	conn *Conn
	err  error
}

// runHandshakes runs Handshake on both ends of a fresh TCP connection: the dialer end is the initiator when
// dialerInitiates. A side that fails closes its connection, as a caller would. It waits for both sides.
func runHandshakes(t *testing.T, dialerCfg, acceptorCfg HandshakeConfig, dialerInitiates bool, expected NodeID) (dialer, acceptor handshakeResult) {
	t.Helper()
	dc, ac := tcpPair(t)
	done := make(chan handshakeResult, 1)
	go func() {
		c, err := Handshake(context.Background(), ac, acceptorCfg, !dialerInitiates, NodeID{})
		if err != nil {
			ac.Close()
		}
		done <- handshakeResult{c, err}
	}()
	c, err := Handshake(context.Background(), dc, dialerCfg, dialerInitiates, expected)
	if err != nil {
		dc.Close()
	}
	dialer = handshakeResult{c, err}
	acceptor = <-done
	return dialer, acceptor
}

func testConfig(tb testing.TB, n byte) HandshakeConfig {
	return HandshakeConfig{
		Identity:    testIdentity(tb, n),
		NetworkID:   "testnet",
		ListenAddrs: []string{"127.0.0.1:" + string('0'+rune(n)) + "000"},
		Timeout:     2 * time.Second,
	}
}

func TestHandshakeSuccess(t *testing.T) {
	for _, dialerInitiates := range []bool{true, false} {
		a, b := testConfig(t, 1), testConfig(t, 2)
		b.Timeout = 100 * time.Millisecond
		dr, ar := runHandshakes(t, a, b, dialerInitiates, b.Identity.NodeID())
		if dr.err != nil || ar.err != nil {
			t.Fatalf("initiator=%v: dialer err %v, acceptor err %v", dialerInitiates, dr.err, ar.err)
		}
		check := func(c *Conn, want HandshakeConfig) {
			t.Helper()
			p := c.Peer()
			if p.ID != want.Identity.NodeID() || c.RemoteID() != p.ID || p.NetworkID != want.NetworkID ||
				p.ProtocolVersion != ProtocolVersion || !slices.Equal(p.ListenAddrs, want.ListenAddrs) {
				t.Fatalf("Peer() = %+v, want id %v and %+v", p, want.Identity.NodeID(), want)
			}
			if c.MaxMessageSize() != DefaultMaxMessageSize {
				t.Fatalf("MaxMessageSize() = %d", c.MaxMessageSize())
			}
		}
		check(dr.conn, b)
		check(ar.conn, a)
		if dr.conn.LocalAddr().String() != ar.conn.RemoteAddr().String() {
			t.Fatalf("addresses: %v vs %v", dr.conn.LocalAddr(), ar.conn.RemoteAddr())
		}

		// The handshake deadline is cleared: the connection still works after it would have expired.
		time.Sleep(2 * b.Timeout)
		if err := dr.conn.WriteMessages([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if m, err := ar.conn.ReadMessage(); err != nil || string(m) != "ping" {
			t.Fatalf("ReadMessage = %q, %v", m, err)
		}
		if err := ar.conn.WriteMessages([]byte("pong")); err != nil {
			t.Fatal(err)
		}
		if m, err := dr.conn.ReadMessage(); err != nil || string(m) != "pong" {
			t.Fatalf("ReadMessage = %q, %v", m, err)
		}
		if err := dr.conn.Close(); err != nil {
			t.Fatal(err)
		}
		if err := dr.conn.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := ar.conn.ReadMessage(); !errors.Is(err, io.EOF) {
			t.Fatalf("ReadMessage after peer closed: %v, want io.EOF", err)
		}
		ar.conn.Close()
	}
}

func TestHandshakeWrongPeer(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	want := testIdentity(t, 3).NodeID()
	dr, ar := runHandshakes(t, a, b, true, want)
	if !errors.Is(dr.err, ErrWrongPeer) {
		t.Fatalf("dialer error = %v, want ErrWrongPeer", dr.err)
	}
	if msg := dr.err.Error(); !strings.Contains(msg, want.String()) || !strings.Contains(msg, b.Identity.NodeID().String()) {
		t.Fatalf("error %q does not name both ids", msg)
	}
	if !errors.Is(ar.err, ErrHandshake) {
		t.Fatalf("acceptor error = %v, want ErrHandshake", ar.err)
	}
}

func TestHandshakeNetworkMismatch(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	b.NetworkID = "othernet"
	dr, ar := runHandshakes(t, a, b, true, NodeID{})
	if !errors.Is(dr.err, ErrNetworkMismatch) || !strings.Contains(dr.err.Error(), "othernet") {
		t.Fatalf("initiator error = %v, want ErrNetworkMismatch naming the network", dr.err)
	}
	if ar.err == nil {
		t.Fatal("responder succeeded")
	}

	// The responder checks too, against an initiator that does not.
	err := handshakeWithRawPeer(t, b, false, func(p *messages.HandshakePayload) { p.NetworkId = "testnet" })
	if !errors.Is(err, ErrNetworkMismatch) {
		t.Fatalf("responder error = %v, want ErrNetworkMismatch", err)
	}
}

func TestHandshakeBadPayloads(t *testing.T) {
	other := testIdentity(t, 7)
	for _, tc := range []struct {
		name   string
		mutate func(*messages.HandshakePayload)
		want   error
	}{
		{"version", func(p *messages.HandshakePayload) { p.ProtocolVersion = "actormesh/2" }, ErrVersionMismatch},
		{"signature by another identity", func(p *messages.HandshakePayload) { p.IdentityKey = other.NodeID().Bytes() }, ErrBadSignature},
		{"corrupt signature", func(p *messages.HandshakePayload) { p.Signature[3] ^= 1 }, ErrBadSignature},
		{"signature over another key", func(p *messages.HandshakePayload) {
			p.Signature = testIdentity(t, 1).Sign(noiseStaticMessage(make([]byte, 32)))
		}, ErrBadSignature},
		{"short identity key", func(p *messages.HandshakePayload) { p.IdentityKey = p.IdentityKey[:31] }, ErrHandshake},
		{"no payload", nil, ErrHandshake},
		{"no inbound window", func(p *messages.HandshakePayload) { p.InboundWindow = nil }, ErrHandshake},
		{"an empty inbound window field", func(p *messages.HandshakePayload) { p.InboundWindow.AppBytes = 0 }, ErrHandshake},
		{"no message size limit", func(p *messages.HandshakePayload) { p.MaxMessageSize = 0 }, ErrHandshake},
		{"a message size limit no control message fits", func(p *messages.HandshakePayload) { p.MaxMessageSize = 14 }, ErrHandshake},
		{"a rekey interval under MinRekeyInterval", func(p *messages.HandshakePayload) { p.RekeyInterval = MinRekeyInterval - 1 }, ErrHandshake},
	} {
		for _, localInitiates := range []bool{true, false} {
			err := handshakeWithRawPeer(t, testConfig(t, 2), localInitiates, tc.mutate)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s (local initiator=%v): error = %v, want %v", tc.name, localInitiates, err, tc.want)
			}
		}
	}
}

// handshakeWithRawPeer runs Handshake with cfg against rawPeer on a TCP connection and returns its error.
func handshakeWithRawPeer(t *testing.T, cfg HandshakeConfig, localInitiates bool, mutate func(*messages.HandshakePayload)) error {
	t.Helper()
	lc, rc := tcpPair(t)
	done := make(chan error, 1)
	go func() {
		// A deadline of its own: a Handshake that stops answering must fail the test, not hang it.
		if err := rc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			done <- err
			return
		}
		_, _, err := rawPeer(rc, !localInitiates, testIdentity(t, 1), mutate)
		rc.Close()
		done <- err
	}()
	c, err := Handshake(context.Background(), lc, cfg, localInitiates, NodeID{})
	lc.Close()
	<-done
	if err == nil {
		c.Close()
	}
	return err
}

// rawPeerMaxMessageSize is the message size limit rawPeer advertises.
const rawPeerMaxMessageSize = MinPeerMessageSize

// rawPeer is an independent Noise_XX_25519_AESGCM_SHA256 peer built directly on flynn/noise (with its stock
// DH25519), speaking the handshake framing of this package. Its payload is a valid one for id on "testnet",
// passed through mutate (nil mutate means sending no payload at all). It does not check the remote payload.
func rawPeer(conn net.Conn, initiator bool, id *Identity, mutate func(*messages.HandshakePayload)) (send, recv *noise.CipherState, err error) {
	static, err := noise.DH25519.GenerateKeypair(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	var payload []byte
	if mutate != nil {
		p := &messages.HandshakePayload{
			IdentityKey:     id.NodeID().Bytes(),
			Signature:       id.Sign(noiseStaticMessage(static.Public)),
			NetworkId:       "testnet",
			ProtocolVersion: ProtocolVersion,
			InboundWindow:   &messages.InboundWindow{ProtocolMessages: 1, ProtocolBytes: 1, AppMessages: 1, AppBytes: 1},
			MaxMessageSize:  rawPeerMaxMessageSize,
		}
		mutate(p)
		if payload, err = proto.Marshal(p); err != nil {
			return nil, nil, err
		}
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256),
		Pattern:       noise.HandshakeXX,
		Initiator:     initiator,
		Prologue:      []byte("actormesh/1"),
		StaticKeypair: static,
	})
	if err != nil {
		return nil, nil, err
	}
	write := func(pl []byte) (*noise.CipherState, *noise.CipherState, error) {
		msg, cs1, cs2, err := hs.WriteMessage(nil, pl)
		if err == nil {
			_, err = conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
		}
		return cs1, cs2, err
	}
	read := func() (*noise.CipherState, *noise.CipherState, error) {
		var hdr [2]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return nil, nil, err
		}
		msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(conn, msg); err != nil {
			return nil, nil, err
		}
		_, cs1, cs2, err := hs.ReadMessage(nil, msg)
		return cs1, cs2, err
	}
	if initiator {
		if _, _, err := write(nil); err != nil {
			return nil, nil, err
		}
		if _, _, err := read(); err != nil {
			return nil, nil, err
		}
		cs1, cs2, err := write(payload)
		return cs1, cs2, err
	}
	if _, _, err := read(); err != nil {
		return nil, nil, err
	}
	if _, _, err := write(payload); err != nil {
		return nil, nil, err
	}
	cs1, cs2, err := read()
	return cs2, cs1, err
}

// TestHandshakeInterop checks the handshake and the transport framing against rawPeer, which uses flynn/noise's
// stock primitives and hand-made frames.
func TestHandshakeInterop(t *testing.T) {
	for _, localInitiates := range []bool{true, false} {
		lc, rc := tcpPair(t)
		type rawResult struct {
			send, recv *noise.CipherState
			err        error
		}
		done := make(chan rawResult, 1)
		go func() {
			send, recv, err := rawPeer(rc, !localInitiates, testIdentity(t, 1), func(*messages.HandshakePayload) {})
			done <- rawResult{send, recv, err}
		}()
		cfg := testConfig(t, 2)
		c, err := Handshake(context.Background(), lc, cfg, localInitiates, NodeID{})
		raw := <-done
		if err != nil || raw.err != nil {
			t.Fatalf("local initiator=%v: local err %v, raw err %v", localInitiates, err, raw.err)
		}
		if c.RemoteID() != testIdentity(t, 1).NodeID() {
			t.Fatalf("RemoteID = %v", c.RemoteID())
		}
		if w := c.Peer().InboundWindow; w != (Window{1, 1, 1, 1}) {
			t.Fatalf("Peer().InboundWindow = %+v, want the raw peer's {1 1 1 1}", w)
		}
		// The peer reads at most 100 bytes: a larger message is refused before anything is written, and the
		// connection stays usable.
		if p, s := c.Peer().MaxMessageSize, c.MaxSendSize(); p != rawPeerMaxMessageSize || s != rawPeerMaxMessageSize || c.MaxMessageSize() != DefaultMaxMessageSize {
			t.Fatalf("peer's limit %d, MaxSendSize %d, MaxMessageSize %d; want %d, %d, %d", p, s, c.MaxMessageSize(),
				rawPeerMaxMessageSize, rawPeerMaxMessageSize, DefaultMaxMessageSize)
		}
		if err := c.WriteMessages(make([]byte, rawPeerMaxMessageSize+1)); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("WriteMessages of a message over the peer's limit: %v, want ErrMessageTooLarge", err)
		}

		// raw -> local: two messages in one hand-made frame.
		plain := binary.BigEndian.AppendUint32(nil, 5)
		plain = append(plain, "hello"...)
		plain = binary.BigEndian.AppendUint32(plain, 0)
		ct, err := raw.send.Encrypt(nil, nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(ct))), ct...)); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"hello", ""} {
			if m, err := c.ReadMessage(); err != nil || string(m) != want || m == nil {
				t.Fatalf("ReadMessage = %q, %v; want %q", m, err, want)
			}
		}

		// local -> raw.
		if err := c.WriteMessages([]byte("abc"), []byte("de")); err != nil {
			t.Fatal(err)
		}
		var hdr [2]byte
		if _, err := io.ReadFull(rc, hdr[:]); err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(rc, frame); err != nil {
			t.Fatal(err)
		}
		got, err := raw.recv.Decrypt(nil, nil, frame)
		if err != nil {
			t.Fatal(err)
		}
		want := []byte("\x00\x00\x00\x03abc\x00\x00\x00\x02de")
		if !bytes.Equal(got, want) {
			t.Fatalf("raw peer decrypted %q, want %q", got, want)
		}
		c.Close()
	}
}

func TestHandshakeGarbage(t *testing.T) {
	random := make([]byte, 100)
	rand.Read(random)
	for _, tc := range []struct {
		name           string
		localInitiates bool
		garbage        []byte
	}{
		{"http request to responder", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"random frame to responder", false, append([]byte{0, 100}, random...)},
		{"random frame to initiator", true, append([]byte{0, 100}, random...)},
		{"empty frame to initiator", true, []byte{0, 0}},
		{"oversized frame to initiator", true, []byte{0xff, 0xff, 1, 2, 3}},
		{"truncated frame then close", true, []byte{0, 100, 1, 2, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lc, rc := tcpPair(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				if tc.localInitiates {
					io.ReadFull(rc, make([]byte, 2+32)) // message 1
				}
				rc.Write(tc.garbage)
				rc.Close()
			}()
			start := time.Now()
			cfg := testConfig(t, 1)
			_, err := Handshake(context.Background(), lc, cfg, tc.localInitiates, NodeID{})
			<-done
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("error = %v, want ErrHandshake", err)
			}
			if time.Since(start) > cfg.Timeout/2 {
				t.Fatalf("took %v: garbage must fail fast, not time out", time.Since(start))
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	for _, localInitiates := range []bool{true, false} {
		lc, rc := tcpPair(t) // rc says nothing
		cfg := testConfig(t, 1)
		cfg.Timeout = 200 * time.Millisecond
		start := time.Now()
		_, err := Handshake(context.Background(), lc, cfg, localInitiates, NodeID{})
		elapsed := time.Since(start)
		if !errors.Is(err, ErrHandshakeTimeout) {
			t.Fatalf("error = %v, want ErrHandshakeTimeout", err)
		}
		if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
			t.Fatalf("timed out after %v, want about 200ms", elapsed)
		}
		rc.Close()
	}
}

func TestHandshakeContext(t *testing.T) {
	t.Run("deadline shorter than timeout", func(t *testing.T) {
		lc, _ := tcpPair(t)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Handshake(ctx, lc, testConfig(t, 1), true, NodeID{})
		if !errors.Is(err, ErrHandshakeTimeout) || time.Since(start) > time.Second {
			t.Fatalf("error = %v after %v, want ErrHandshakeTimeout after about 100ms", err, time.Since(start))
		}
	})
	t.Run("cancel", func(t *testing.T) {
		lc, rc := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(50*time.Millisecond, cancel)
		defer timer.Stop()
		start := time.Now()
		_, err := Handshake(ctx, lc, testConfig(t, 1), false, NodeID{})
		if !errors.Is(err, ErrHandshake) || !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
			t.Fatalf("error = %v after %v, want ErrHandshake wrapping context.Canceled", err, time.Since(start))
		}
		// The deadline set by the interruption was cleared: the connection reads again (a deadline left in the
		// past would fail the read at once with a timeout).
		if _, err := rc.Write([]byte{7}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(lc, b[:]); err != nil || b[0] != 7 {
			t.Fatalf("reading after the cancelled handshake: %v (byte %d), want the byte the peer wrote", err, b[0])
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		lc, _ := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Handshake(ctx, lc, testConfig(t, 1), true, NodeID{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v, want context.Canceled", err)
		}
	})
}

func TestHandshakeConfigErrors(t *testing.T) {
	lc, _ := tcpPair(t)
	if _, err := Handshake(context.Background(), lc, HandshakeConfig{}, true, NodeID{}); err == nil {
		t.Fatal("nil identity accepted")
	}
	cfg := testConfig(t, 1)
	cfg.ListenAddrs = slices.Repeat([]string{"a-very-long-host-name.example.org:4001"}, 200)
	if _, err := Handshake(context.Background(), lc, cfg, true, NodeID{}); err == nil || errors.Is(err, ErrHandshake) {
		t.Fatalf("oversized payload: error = %v, want a config error", err)
	}
}

// BenchmarkHandshake measures one complete XX handshake, both sides, over net.Pipe, with identities whose
// Noise static keys are already made (as in a running node). cpu-µs/handshake is the process CPU time.
func BenchmarkHandshake(b *testing.B) {
	a, r := testConfig(b, 1), testConfig(b, 2)
	want := r.Identity.NodeID()
	ctx := context.Background()
	errs := make(chan error, 1)
	b.ReportAllocs()
	cpu0 := cpuTime()
	start := time.Now()
	for b.Loop() {
		c1, c2 := net.Pipe()
		go func() {
			_, err := Handshake(ctx, c2, r, false, NodeID{})
			errs <- err
		}()
		_, err := Handshake(ctx, c1, a, true, want)
		if rerr := <-errs; err != nil || rerr != nil {
			b.Fatal(err, rerr)
		}
		c1.Close()
		c2.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(time.Since(start).Microseconds())/n, "µs/handshake")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/n, "cpu-µs/handshake")
}

// BenchmarkHandshakeDH compares the X25519 work of one side of an XX handshake (one ephemeral key pair and three
// DH operations) with flynn/noise's stock DH25519 and with x25519DH.
func BenchmarkHandshakeDH(b *testing.B) {
	static, _, err := testIdentity(b, 1).noiseStatic()
	if err != nil {
		b.Fatal(err)
	}
	staticKey := noise.DHKey{Private: static.Bytes(), Public: static.PublicKey().Bytes()}
	peer, _ := noise.DH25519.GenerateKeypair(rand.Reader)
	run := func(b *testing.B, newDH func() noise.DHFunc) {
		for b.Loop() {
			dh := newDH()
			e, err := dh.GenerateKeypair(rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			for _, priv := range [][]byte{e.Private, e.Private, staticKey.Private} {
				if _, err := dh.DH(priv, peer.Public); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("flynn-DH25519", func(b *testing.B) { run(b, func() noise.DHFunc { return noise.DH25519 }) })
	b.Run("x25519DH", func(b *testing.B) { run(b, func() noise.DHFunc { return x25519DH{} }) })
}

// TestHandshakePeerMessageSizeLimit: each side learns the other's MaxMessageSize, writes at most the smaller of the
// two, and takes a peer's limit over MaxMessageSizeLimit as that limit.
func TestHandshakePeerMessageSizeLimit(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	a.MaxMessageSize, b.MaxMessageSize = 64<<10, 32<<10
	dr, ar := runHandshakes(t, a, b, true, b.Identity.NodeID())
	if dr.err != nil || ar.err != nil {
		t.Fatalf("dialer err %v, acceptor err %v", dr.err, ar.err)
	}
	defer dr.conn.Close()
	defer ar.conn.Close()
	for _, c := range []struct {
		conn                *Conn
		peer, read, maxSend int
	}{{dr.conn, 32 << 10, 64 << 10, 32 << 10}, {ar.conn, 64 << 10, 32 << 10, 32 << 10}} {
		if p := c.conn.Peer().MaxMessageSize; p != c.peer || c.conn.MaxMessageSize() != c.read || c.conn.MaxSendSize() != c.maxSend {
			t.Fatalf("peer's limit %d, MaxMessageSize %d, MaxSendSize %d; want %d, %d, %d", p, c.conn.MaxMessageSize(),
				c.conn.MaxSendSize(), c.peer, c.read, c.maxSend)
		}
	}
	if err := dr.conn.WriteMessages(make([]byte, 32<<10+1)); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("a message over the peer's limit: %v, want ErrMessageTooLarge", err)
	}
	msg := make([]byte, 32<<10)
	go func() { _ = dr.conn.WriteMessages(msg) }()
	if got, err := ar.conn.ReadMessage(); err != nil || len(got) != len(msg) {
		t.Fatalf("a message of the peer's limit: %d bytes, %v", len(got), err)
	}

	err := handshakeWithRawPeer(t, testConfig(t, 2), true, func(p *messages.HandshakePayload) { p.MaxMessageSize = 1 << 40 })
	if err != nil {
		t.Fatalf("a peer advertising a limit over MaxMessageSizeLimit: %v", err)
	}
}

// A HandshakeConfig whose Identity holds no key (nil, or the zero Identity) is refused before anything is sent: the
// zero one panicked building the Noise static key.
func TestHandshakeRefusesAnIdentityWithoutAKey(t *testing.T) {
	for name, id := range map[string]*Identity{"nil": nil, "zero": {}} {
		lc, _ := tcpPair(t)
		cfg := testConfig(t, 1)
		cfg.Identity = id
		if _, err := Handshake(context.Background(), lc, cfg, true, NodeID{}); err == nil {
			t.Errorf("%s Identity: handshake accepted", name)
		}
	}
}
