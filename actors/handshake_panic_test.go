package actors

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/actormesh/actormesh/session"
)

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
