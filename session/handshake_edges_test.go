package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"sort"
	"strings"
	"testing"
	"time"
)

// A HandshakeConfig without a Timeout or an InboundWindow takes DefaultHandshakeTimeout (the handshake runs: a zero
// timeout would expire at once) and DefaultInboundWindow (told to the peer).
func TestAHandshakeConfigsZeroTimeoutAndWindowTakeTheDefaults(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	a.Timeout, b.Timeout = 0, 0
	dr, ar := runHandshakes(t, a, b, true, b.Identity.NodeID())
	if dr.err != nil || ar.err != nil {
		t.Fatalf("dialer %v, acceptor %v", dr.err, ar.err)
	}
	dr.conn.Close()
	ar.conn.Close()
	if w := ar.conn.Peer().InboundWindow; w != DefaultInboundWindow() {
		t.Fatalf("the dialer told the window %+v, want DefaultInboundWindow %+v", w, DefaultInboundWindow())
	}
}

// readRecorder is a net.Conn that keeps a copy of what is read from it.
type readRecorder struct {
	net.Conn
	read bytes.Buffer
}

func (r *readRecorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.read.Write(p[:n])
	return n, err
}

// configTaken tells whether Handshake takes cfg: it starts the handshake (and fails on a peer that closes at once)
// rather than refusing cfg before any I/O.
func configTaken(t *testing.T, cfg HandshakeConfig) bool {
	t.Helper()
	var w countingWriter
	_, err := Handshake(context.Background(), &deadlineConn{memConn{r: bytes.NewReader(nil), w: &w}}, cfg, true, NodeID{})
	return errors.Is(err, ErrHandshake)
}

// The payload of a HandshakeConfig is taken up to the size whose message 2 (the responder's ephemeral key, its
// encrypted static key and the encrypted payload) fills a handshake message exactly, and that handshake succeeds:
// the bound counts the payload's tag, and no byte more.
func TestAHandshakePayloadMayFillMessage2Exactly(t *testing.T) {
	withAddr := func(n byte, addrLen int) HandshakeConfig {
		cfg := testConfig(t, n)
		cfg.ListenAddrs = []string{strings.Repeat("a", addrLen)}
		return cfg
	}
	// The longest listen address taken: the first refused, less one.
	longest := sort.Search(maxHandshakeMessage, func(l int) bool { return !configTaken(t, withAddr(2, l)) }) - 1
	if longest <= 0 || longest >= maxHandshakeMessage-1 {
		t.Fatalf("the longest listen address taken has %d bytes", longest)
	}
	dc, ac := tcpPair(t)
	rec := &readRecorder{Conn: dc}
	ar := make(chan error, 1)
	go func() {
		c, err := Handshake(context.Background(), ac, withAddr(2, longest), false, NodeID{})
		if err == nil {
			c.Close()
		}
		ac.Close()
		ar <- err
	}()
	c, err := Handshake(context.Background(), rec, testConfig(t, 1), true, NodeID{})
	if err == nil {
		c.Close()
	}
	dc.Close()
	if aerr := <-ar; err != nil || aerr != nil {
		t.Fatalf("with a %d-byte listen address: initiator %v, responder %v", longest, err, aerr)
	}
	if got := binary.BigEndian.Uint16(rec.read.Bytes()); got != maxHandshakeMessage {
		t.Fatalf("message 2 has %d bytes, want the largest, %d", got, maxHandshakeMessage)
	}
}

// A context whose deadline has passed fails the handshake with ErrHandshakeTimeout (wrapping the context's error),
// as a deadline reached during the handshake does.
func TestAHandshakeUnderAnExpiredContextTimesOut(t *testing.T) {
	lc, _ := tcpPair(t)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := Handshake(ctx, lc, testConfig(t, 1), true, NodeID{})
	if !errors.Is(err, ErrHandshakeTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want ErrHandshakeTimeout wrapping context.DeadlineExceeded", err)
	}
}

// slowInterruptConn holds a Handshake's interruption (a deadline in the past) until released, and tells when it
// came and when it was applied.
type slowInterruptConn struct {
	net.Conn
	started, interrupting, interrupted, release chan struct{}
}

func (c *slowInterruptConn) SetDeadline(t time.Time) error {
	if t.After(time.Now()) { // the handshake's deadline: it has started
		defer close(c.started)
	}
	if t.IsZero() || t.After(time.Now()) {
		return c.Conn.SetDeadline(t)
	}
	close(c.interrupting)
	<-c.release
	defer close(c.interrupted)
	return c.Conn.SetDeadline(t)
}

// A cancellation that comes as the handshake ends, its interruption landing late, leaves the connection without a
// deadline: Handshake waits for the interruption before it clears the deadline, so that the Conn it returns can read.
func TestAnInterruptionLandingAfterTheHandshakeLeavesNoDeadline(t *testing.T) {
	dc, ac := tcpPair(t)
	sc := &slowInterruptConn{Conn: dc, started: make(chan struct{}), interrupting: make(chan struct{}),
		interrupted: make(chan struct{}), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan handshakeResult, 1)
	go func() {
		c, err := Handshake(ctx, sc, testConfig(t, 1), true, NodeID{})
		done <- handshakeResult{c, err}
	}()
	<-sc.started // a cancellation before the handshake starts fails it at once
	cancel()
	<-sc.interrupting // the initiator's I/O is not interrupted yet: the responder completes the handshake
	ar, err := Handshake(context.Background(), ac, testConfig(t, 2), false, NodeID{})
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	close(sc.release)
	dr := <-done
	<-sc.interrupted
	if dr.err != nil {
		t.Fatalf("initiator: %v", dr.err)
	}
	defer dr.conn.Close()
	if err := ar.WriteMessages([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if m, err := dr.conn.ReadMessage(); err != nil || string(m) != "ping" {
		t.Fatalf("ReadMessage = %q, %v; want ping", m, err)
	}
}

// A responder given a NodeID to expect refuses another peer with ErrWrongPeer, as an initiator does (it ignored
// expected, and a dialer running the handshake as the responder took any node).
func TestAResponderRefusesAPeerOtherThanTheOneExpected(t *testing.T) {
	a, b := testConfig(t, 1), testConfig(t, 2)
	want := testIdentity(t, 3).NodeID()
	dr, ar := runHandshakes(t, a, b, false, want) // the dialer, a, is the responder
	if !errors.Is(dr.err, ErrWrongPeer) || !strings.Contains(dr.err.Error(), want.String()) {
		t.Fatalf("responder error = %v, want ErrWrongPeer naming %v", dr.err, want)
	}
	if ar.err == nil {
		ar.conn.Close() // the initiator's part was done before the responder saw who it was
	}
	dr, ar = runHandshakes(t, a, b, false, b.Identity.NodeID())
	if dr.err != nil || ar.err != nil {
		t.Fatalf("the expected peer: responder %v, initiator %v", dr.err, ar.err)
	}
	dr.conn.Close()
	ar.conn.Close()
}
