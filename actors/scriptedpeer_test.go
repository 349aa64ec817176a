package actors_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// newIdentity generates an identity or fails the test.
func newIdentity(t testing.TB) *session.Identity {
	t.Helper()
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// scriptedPeer listens on 127.0.0.1 under identity id, handshakes each connection it accepts as the responder, and
// hands it to serve (in the accept loop: serve starts a goroutine of its own to hold it) with its number, from 1.
// It returns the peer's address and how many connections it took. The listener, and every connection handshaken,
// close when the test ends.
func scriptedPeer(t *testing.T, id *session.Identity, serve func(n int32, sc *session.Conn)) (session.PeerAddr, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var taken atomic.Int32
	var mu sync.Mutex
	var conns []*session.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			n := taken.Add(1)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			sc, err := session.Handshake(ctx, raw, session.HandshakeConfig{Identity: id, NetworkID: "actormesh"}, false, session.NodeID{})
			cancel()
			if err != nil {
				_ = raw.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, sc)
			mu.Unlock()
			serve(n, sc)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, sc := range conns {
			_ = sc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return session.PeerAddr{ID: id.NodeID(), Addr: ln.Addr().String()}, &taken
}

// refuseWith says goodbye on sc with reason and closes it, as a node refusing the connection does.
func refuseWith(sc *session.Conn, reason messages.DisconnectReason) {
	bye, _ := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Disconnect{Disconnect: &messages.Disconnect{
		Reason: reason, Detail: "scripted",
	}}})
	_ = sc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = sc.WriteMessages(bye)
	_ = sc.Close()
}

// hold keeps sc open, reading and dropping what comes, until it closes (scriptedPeer closes it as the test ends).
func hold(sc *session.Conn) {
	go func() {
		for {
			if _, err := sc.ReadMessage(); err != nil {
				return
			}
		}
	}()
}
