package session

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TCPTransport.Dial applies the address check its context carries to the address a host name resolves to, before
// connecting, and dials as before without one.
func TestTCPDialAppliesTheContextsAddressCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var seen []netip.Addr
	refuse := errors.New("refused by the test")
	checked := ContextWithAddrCheck(ctx, func(ip netip.Addr) error {
		seen = append(seen, ip)
		return refuse
	})
	_, err = TCPTransport{}.Dial(checked, "localhost:"+port)
	if !errors.Is(err, ErrDialRefused) || !errors.Is(err, refuse) {
		t.Fatalf("dial refused by the check: %v, want ErrDialRefused wrapping the check's error", err)
	}
	if len(seen) == 0 || !seen[0].Unmap().IsLoopback() {
		t.Fatalf("the check saw %v, want the loopback address localhost resolves to", seen)
	}

	allowed := ContextWithAddrCheck(ctx, func(netip.Addr) error { return nil })
	for _, c := range []context.Context{ctx, allowed} {
		conn, err := TCPTransport{}.Dial(c, "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("dial without a refusal: %v", err)
		}
		_ = conn.Close()
	}
}
