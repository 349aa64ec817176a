package actors

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// panickingHandler panics on every direct message, as a bug in dispatching what a peer sent would.
type panickingHandler struct{}

func (panickingHandler) onDirect(*peerConn, *direct) { panic("test: a bug dispatching a message") }
func (panickingHandler) onPong(*peerConn, uint64)    {}

// handshakenTCP returns the two ends of a handshaken connection over TCP on 127.0.0.1: the dialer's and the
// listener's.
func handshakenTCP(t *testing.T) (*session.Conn, *session.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	type end struct {
		sc  *session.Conn
		err error
	}
	accepted := make(chan end, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			accepted <- end{err: err}
			return
		}
		id, _ := session.GenerateIdentity()
		sc, err := session.Handshake(ctx, raw, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, false, session.NodeID{})
		accepted <- end{sc, err}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	id, _ := session.GenerateIdentity()
	dialer, err := session.Handshake(ctx, raw, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, true, session.NodeID{})
	if err != nil {
		t.Fatal(err)
	}
	a := <-accepted
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { _ = dialer.Close(); _ = a.sc.Close() })
	return dialer, a.sc
}

// A panic of a connection's reader (a bug in decoding or dispatching what the peer sent: the reader runs outside
// any actor, where no supervisor catches it) ends that connection with PROTOCOL_ERROR, told to the peer. It used to
// end the process.
func TestReaderPanicClosesOnlyThatConnection(t *testing.T) {
	local, remote := handshakenTCP(t)
	cfg := DefaultConfig()
	log := zerolog.Nop()
	pc := newPeerConn(local, 1, true, &cfg, &log, panickingHandler{})
	finished := make(chan struct{})
	pc.start(func() { close(finished) })
	msg, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: "any/1", Kind: messages.DirectKind_DIRECT_KIND_ONEWAY,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteMessages(msg); err != nil {
		t.Fatal(err)
	}
	_ = remote.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		b, err := remote.ReadMessage()
		if err != nil {
			t.Fatalf("no goodbye from the connection whose reader panicked: %v", err)
		}
		env := &messages.Envelope{}
		if proto.Unmarshal(b, env) == nil && env.GetDisconnect() != nil {
			if r := env.GetDisconnect().GetReason(); r != messages.DisconnectReason_DISCONNECT_REASON_PROTOCOL_ERROR {
				t.Fatalf("goodbye reason %v, want PROTOCOL_ERROR", r)
			}
			break
		}
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not finish")
	}
}

// panickingConn is a connection whose reads panic, as a bug in parsing a peer's handshake would.
type panickingConn struct {
	net.Conn
	closed bool
}

func (c *panickingConn) Read([]byte) (int, error) { panic("test: a bug parsing the handshake") }
func (c *panickingConn) Close() error             { c.closed = true; return nil }

// A handshake that panics fails alone, with an error wrapping session.ErrHandshake, and its connection is closed:
// it runs in a goroutine of its own, and used to end the process.
func TestHandshakePanicFailsThatHandshakeOnly(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	conn := &panickingConn{Conn: server}
	id, _ := session.GenerateIdentity()
	sc, err := handshake(context.Background(), conn, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, false, session.NodeID{})
	if sc != nil || !errors.Is(err, session.ErrHandshake) {
		t.Fatalf("handshake = %v, %v; want nil and an error wrapping ErrHandshake", sc, err)
	}
	if !conn.closed {
		t.Fatal("the connection of the failed handshake was not closed")
	}
}
