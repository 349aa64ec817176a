package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flynn/noise"

	"github.com/actormesh/actormesh/messages"
)

// deadlineConn is a memConn whose deadline setters do nothing, for a Handshake that must fail before any I/O.
type deadlineConn struct{ memConn }

func (*deadlineConn) SetDeadline(time.Time) error { return nil }

// Out-of-range HandshakeConfig values are refused with a plain error before anything is written (none was tested
// but the oversized payload, and that one only for not being ErrHandshake); the bounds themselves are taken.
func TestHandshakeConfigRefusesOutOfRangeValues(t *testing.T) {
	type configCase struct {
		name   string
		mutate func(*HandshakeConfig)
		ok     bool
	}
	var limit int64 = MaxMessageSizeLimit
	var limitCases []configCase
	if math.MaxInt >= limit+1 { // an int holds the limit and past it only on 64-bit platforms
		limitCases = []configCase{
			{"MaxMessageSize at MaxMessageSizeLimit", func(c *HandshakeConfig) { c.MaxMessageSize = int(limit) }, true},
			{"MaxMessageSize over MaxMessageSizeLimit", func(c *HandshakeConfig) { c.MaxMessageSize = int(limit + 1) }, false},
		}
	}
	for _, tc := range append([]configCase{
		{"negative Timeout", func(c *HandshakeConfig) { c.Timeout = -1 }, false},
		{"negative MaxMessageSize", func(c *HandshakeConfig) { c.MaxMessageSize = -1 }, false},
		{"MaxMessageSize under MinPeerMessageSize", func(c *HandshakeConfig) { c.MaxMessageSize = MinPeerMessageSize - 1 }, false},
		{"MaxMessageSize at MinPeerMessageSize", func(c *HandshakeConfig) { c.MaxMessageSize = MinPeerMessageSize }, true},
		{"an InboundWindow field at 0", func(c *HandshakeConfig) { c.InboundWindow = Window{1, 1, 1, 0} }, false},
		{"an InboundWindow field over MaxWindow", func(c *HandshakeConfig) { c.InboundWindow = Window{1, MaxWindow + 1, 1, 1} }, false},
		{"InboundWindow at MaxWindow", func(c *HandshakeConfig) { c.InboundWindow = Window{MaxWindow, MaxWindow, MaxWindow, MaxWindow} }, true},
		{"a negative RekeyInterval", func(c *HandshakeConfig) { c.RekeyInterval = -1 }, false},
		{"RekeyInterval under MinRekeyInterval", func(c *HandshakeConfig) { c.RekeyInterval = MinRekeyInterval - 1 }, false},
		{"RekeyInterval at MinRekeyInterval", func(c *HandshakeConfig) { c.RekeyInterval = MinRekeyInterval }, true},
		{"RekeyInterval at MaxRekeyInterval", func(c *HandshakeConfig) { c.RekeyInterval = MaxRekeyInterval }, true},
		{"RekeyInterval over MaxRekeyInterval", func(c *HandshakeConfig) { c.RekeyInterval = MaxRekeyInterval + 1 }, false},
		{"a payload over a handshake message", func(c *HandshakeConfig) {
			c.ListenAddrs = slices.Repeat([]string{"a-very-long-host-name.example.org:4001"}, 200)
		}, false},
	}, limitCases...) {
		t.Run(tc.name, func(t *testing.T) {
			var w countingWriter
			nc := &deadlineConn{memConn{r: bytes.NewReader(nil), w: &w}} // a peer that closes at once
			cfg := testConfig(t, 1)
			tc.mutate(&cfg)
			_, err := Handshake(context.Background(), nc, cfg, true, NodeID{})
			if tc.ok {
				// Taken: the handshake starts (message 1 goes out) and fails on the closed connection.
				if !errors.Is(err, ErrHandshake) || w.buf.Len() == 0 {
					t.Fatalf("error %v after writing %d bytes, want ErrHandshake after message 1", err, w.buf.Len())
				}
				return
			}
			if err == nil || errors.Is(err, ErrHandshake) || errors.Is(err, ErrHandshakeTimeout) || w.buf.Len() != 0 {
				t.Fatalf("error %v after writing %d bytes, want a config error and nothing written", err, w.buf.Len())
			}
		})
	}
}

// A handshake message longer than maxHandshakeMessage is refused on its 2-byte length, before its bytes come: a
// peer announcing 4097 bytes and sending none fails the handshake at once rather than holding it (and a buffer for
// the message) until the timeout.
func TestHandshakeRefusesAnOversizedMessageOnItsLength(t *testing.T) {
	for _, localInitiates := range []bool{true, false} {
		lc, rc := tcpPair(t)
		go func() {
			if localInitiates {
				io.ReadFull(rc, make([]byte, 2+32)) // message 1
			}
			rc.Write(binary.BigEndian.AppendUint16(nil, maxHandshakeMessage+1)) // and nothing more; rc stays open
		}()
		cfg := testConfig(t, 1)
		cfg.Timeout = time.Second
		_, err := Handshake(context.Background(), lc, cfg, localInitiates, NodeID{})
		if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "frame too long") {
			t.Fatalf("local initiator=%v: error = %v, want ErrHandshake for a frame too long", localInitiates, err)
		}
	}
}

// XX's message 1 is the initiator's ephemeral key alone: a responder refuses one carrying a payload (sent in the
// clear), and answers nothing.
func TestHandshakeRefusesAPayloadInMessage1(t *testing.T) {
	lc, rc := tcpPair(t)
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite: noise.NewCipherSuite(noise.DH25519, noise.CipherAESGCM, noise.HashSHA256),
		Pattern:     noise.HandshakeXX,
		Initiator:   true,
		Prologue:    []byte(noisePrologue),
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, _, _, err := hs.WriteMessage(nil, []byte("early data"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, 1)
	cfg.Timeout = time.Second
	_, err = Handshake(context.Background(), lc, cfg, false, NodeID{})
	if !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "unexpected") {
		t.Fatalf("error = %v, want ErrHandshake for a payload in message 1", err)
	}
	lc.Close()
	if n, err := io.ReadFull(rc, make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("the responder answered: %d bytes, %v", n, err)
	}
}

// A peer's limits above what this side holds are taken as the bounds (PeerInfo's docs): a message size limit over
// MaxMessageSizeLimit is MaxMessageSizeLimit, a window field over MaxWindow (even 2^64-1) is MaxWindow. Unclamped,
// 2^64-1 converted to a negative int64 and the peer was refused.
func TestHandshakeClampsAPeersHugeLimits(t *testing.T) {
	for _, localInitiates := range []bool{true, false} {
		lc, rc := tcpPair(t)
		done := make(chan error, 1)
		go func() {
			_, _, err := rawPeer(rc, !localInitiates, testIdentity(t, 1), func(p *messages.HandshakePayload) {
				p.MaxMessageSize = math.MaxUint64
				p.InboundWindow = &messages.InboundWindow{ProtocolMessages: math.MaxUint64, ProtocolBytes: MaxWindow + 1,
					AppMessages: 1 << 63, AppBytes: MaxWindow}
			})
			done <- err
		}()
		c, err := Handshake(context.Background(), lc, testConfig(t, 2), localInitiates, NodeID{})
		if err != nil {
			lc.Close() // the raw peer may wait for message 3
		}
		if rerr := <-done; err != nil || rerr != nil {
			t.Fatalf("local initiator=%v: %v, raw peer %v", localInitiates, err, rerr)
		}
		p := c.Peer()
		c.Close()
		if p.MaxMessageSize != MaxMessageSizeLimit || p.InboundWindow != (Window{MaxWindow, MaxWindow, MaxWindow, MaxWindow}) {
			t.Fatalf("local initiator=%v: peer's limit %d, window %+v; want %d and MaxWindow in each field", localInitiates,
				p.MaxMessageSize, p.InboundWindow, int64(MaxMessageSizeLimit))
		}
	}
}

// Transient travels to the peer: the acceptor learns the dialer opened the connection on demand.
func TestHandshakeTellsThePeerTheConnectionIsTransient(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	a.Transient = true
	dr, ar := runHandshakes(t, a, b, true, NodeID{})
	if dr.err != nil || ar.err != nil {
		t.Fatal(dr.err, ar.err)
	}
	defer dr.conn.Close()
	defer ar.conn.Close()
	if !ar.conn.Peer().Transient || dr.conn.Peer().Transient {
		t.Fatalf("acceptor sees Transient %v (want true), dialer %v (want false)", ar.conn.Peer().Transient, dr.conn.Peer().Transient)
	}
}
