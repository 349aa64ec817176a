package actors

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/session"
)

func ipNet(s string) net.Addr {
	p := netip.MustParsePrefix(s)
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func TestAdvertiseIPPrefersAnInterfaceAddress(t *testing.T) {
	cases := []struct {
		name  string
		addrs []net.Addr
		v6    bool
		want  string
	}{
		{"ipv4 before ipv6", []net.Addr{ipNet("127.0.0.1/8"), ipNet("fd00::2/64"), ipNet("192.0.2.2/24")}, false, "192.0.2.2"},
		{"private ipv4", []net.Addr{ipNet("::1/128"), ipNet("10.1.2.3/8")}, true, "10.1.2.3"},
		{"ipv6 when no ipv4", []net.Addr{ipNet("127.0.0.1/8"), ipNet("fe80::1/64"), ipNet("2001:db8::7/64")}, false, "2001:db8::7"},
		{"first of a kind", []net.Addr{ipNet("198.51.100.1/24"), ipNet("203.0.113.9/24")}, false, "198.51.100.1"},
		{"only loopback and link-local", []net.Addr{ipNet("127.0.0.1/8"), ipNet("169.254.1.1/16"), ipNet("fe80::1/64")}, false, "127.0.0.1"},
		{"nothing, ipv6 listener", nil, true, "::1"},
		{"not an IPNet", []net.Addr{&net.IPAddr{IP: net.ParseIP("192.0.2.9")}}, false, "127.0.0.1"},
	}
	for _, c := range cases {
		if got := advertiseIP(c.addrs, c.v6); got.String() != c.want {
			t.Errorf("%s: advertiseIP = %s, want %s", c.name, got, c.want)
		}
	}
	ifs := func() ([]net.Addr, error) { return []net.Addr{ipNet("192.0.2.2/24")}, nil }
	for listen, want := range map[string]string{
		"0.0.0.0:4001":   "192.0.2.2:4001",
		"[::]:4001":      "192.0.2.2:4001",
		"127.0.0.1:4001": "127.0.0.1:4001",
		"10.0.0.1:4001":  "10.0.0.1:4001",
	} {
		ap := netip.MustParseAddrPort(listen)
		if got := advertiseAddr("", net.TCPAddrFromAddrPort(ap), ifs); got != want {
			t.Errorf("listening on %s: advertised %s, want %s", listen, got, want)
		}
	}
	if got := advertiseAddr("node.example.org:4001", &net.TCPAddr{Port: 1}, ifs); got != "node.example.org:4001" {
		t.Errorf("configured AdvertiseAddr: advertised %s", got)
	}
}

// A node listening on every interface advertises an address of the host's interfaces, which other nodes can dial;
// it advertised 127.0.0.1, which nodes on other hosts drop from its records.
func TestNodeListeningEverywhereAdvertisesAnInterfaceAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	everywhere := startTestNode(t, ctx, func(cfg *Config) {
		cfg.DisableDiscovery = true
		cfg.ListenAddr = "0.0.0.0:0"
	})
	host, _, err := net.SplitHostPort(everywhere.Addr().Addr)
	if err != nil {
		t.Fatal(err)
	}
	ifAddrs, _ := net.InterfaceAddrs()
	if want := advertiseIP(ifAddrs, false).String(); host != want {
		t.Fatalf("advertised host %s, want %s (an interface address)", host, want)
	}
	if ip := netip.MustParseAddr(host); ip.IsUnspecified() {
		t.Fatalf("advertised the unspecified address %s", host)
	}
	other := startTestNode(t, ctx, func(cfg *Config) {
		cfg.DisableDiscovery = true
		cfg.Logger = zerolog.Nop()
	})
	if err := other.Connect(ctx, session.PeerAddr{ID: everywhere.ID(), Addr: everywhere.Addr().Addr}, false); err != nil {
		t.Fatalf("dialing the advertised address %s: %v", everywhere.Addr().Addr, err)
	}
}
