package actors_test

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// A node reachable off its host dials no loopback address at a peer's word, even behind a host name: a peer that
// declares "localhost:<port>" in its handshake is not dialed there once it has gone (the name resolves to
// 127.0.0.1, which the dial refuses after resolution). The same address given by the application is dialed.
func TestNodeOffItsHostDialsNoLoopbackAddressLearnedFromAPeer(t *testing.T) {
	portA, portB := freePort(t), freePort(t)
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		if i == 0 {
			cfg.ListenAddr = "127.0.0.1:" + strconv.Itoa(portA)
			cfg.AdvertiseAddr = "192.0.2.1:" + strconv.Itoa(portA) // TEST-NET-1: off the host
		} else {
			cfg.ListenAddr = "127.0.0.1:" + strconv.Itoa(portB)
			cfg.AdvertiseAddr = "localhost:" + strconv.Itoa(portB)
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	register(t, b, "echo/1", echo())
	if err := b.Connect(ctxTimeout(t, 5*time.Second), session.PeerAddr{ID: a.ID(), Addr: "127.0.0.1:" + strconv.Itoa(portA)}, false); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return a.Connected(b.ID()) }, "a sees b")
	if err := b.Disconnect(a.ID()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return !a.Connected(b.ID()) }, "a no longer sees b")

	_, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String("ab"))
	if !errors.Is(err, session.ErrDialRefused) || !errors.Is(err, routing.ErrLoopbackFromNetwork) {
		t.Fatalf("request to a peer at the loopback address it declared: %v, want ErrDialRefused and ErrLoopbackFromNetwork", err)
	}
	if err := a.AddAddress(b.ID(), "localhost:"+strconv.Itoa(portB)); err != nil {
		t.Fatal(err)
	}
	reply, err := a.Request(ctxTimeout(t, 5*time.Second), b.ID(), "echo/1", wrapperspb.String("ab"))
	if err != nil || reply.(*wrapperspb.StringValue).GetValue() != "ba" {
		t.Fatalf("request at the address the application gave: %v %v", reply, err)
	}
}
