package session

import (
	"errors"
	"strings"
	"testing"
)

func TestPeerAddrRoundTrip(t *testing.T) {
	id := testIdentity(t, 1).NodeID()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:4001", "127.0.0.1:4001"},
		{"[::1]:4001", "[::1]:4001"},
		{"[0:0::1]:4001", "[::1]:4001"},
		{"[fe80::1%eth0]:9", "[fe80::1%eth0]:9"},
		{"node-1.example.org:65535", "node-1.example.org:65535"},
		{"localhost:080", "localhost:80"},
	} {
		in := id.String() + "@" + tc.addr
		a, err := ParsePeerAddr(in)
		if err != nil {
			t.Fatalf("ParsePeerAddr(%q): %v", in, err)
		}
		if a.ID != id || a.Addr != tc.want {
			t.Fatalf("ParsePeerAddr(%q) = %+v, want addr %q", in, a, tc.want)
		}
		if got, want := a.String(), id.String()+"@"+tc.want; got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
		again, err := ParsePeerAddr(a.String())
		if err != nil || again != a {
			t.Fatalf("ParsePeerAddr(String()) = %+v, %v; want %+v", again, err, a)
		}
		text, _ := a.MarshalText()
		var u PeerAddr
		if err := u.UnmarshalText(text); err != nil || u != a {
			t.Fatalf("text round trip = %+v, %v; want %+v", u, err, a)
		}
	}
}

func TestParsePeerAddrErrors(t *testing.T) {
	id := testIdentity(t, 1).NodeID().String()
	for _, tc := range []struct{ name, in, wantMsg string }{
		{"empty", "", "missing '@'"},
		{"no at", id + "127.0.0.1:1", "missing '@'"},
		{"bad id", "abc@127.0.0.1:1", "bad id"},
		{"zero id", strings.Repeat("0", 64) + "@127.0.0.1:1", "id is zero"},
		{"no port", id + "@127.0.0.1", "bad host:port"},
		{"unbracketed ipv6", id + "@::1:80", "bad host:port"},
		{"empty host", id + "@:80", "empty host"},
		{"port zero", id + "@127.0.0.1:0", "out of range"},
		{"port too big", id + "@127.0.0.1:65536", "out of range"},
		{"port not numeric", id + "@127.0.0.1:http", "out of range"},
		{"negative port", id + "@127.0.0.1:-1", "out of range"},
		{"bracketed name", id + "@[example.org]:80", "not an IPv6 address"},
		{"bad host char", id + "@exa mple.org:80", "not allowed"},
		{"two ats", id + "@a@b:1", "not allowed"},
		// netip takes any zone: a newline in it reached logs and the admin API
		{"zone with a newline", id + "@[fe80::1%eth0\ninjected]:4001", "bad IPv6 zone"},
		{"zone too long", id + "@[fe80::1%" + strings.Repeat("e", 40) + "]:4001", "bad IPv6 zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePeerAddr(tc.in)
			if !errors.Is(err, ErrBadPeerAddr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("ParsePeerAddr(%q) error = %v, want ErrBadPeerAddr mentioning %q", tc.in, err, tc.wantMsg)
			}
		})
	}
}

// ParseHostPort checks what ParsePeerAddr checks after the '@', with the same sentinel.
func TestParseHostPort(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1", "127.0.0.1:0", ":99", "[::1", "host:99999", "a b:1", "[fe80::1%a\nb]:1"} {
		if _, err := ParseHostPort(bad); !errors.Is(err, ErrBadPeerAddr) {
			t.Errorf("ParseHostPort(%q) = %v, want ErrBadPeerAddr", bad, err)
		}
	}
	for in, want := range map[string]string{"127.0.0.1:30303": "127.0.0.1:30303", "[::1]:1": "[::1]:1", "node-1.example:9": "node-1.example:9"} {
		if got, err := ParseHostPort(in); err != nil || got != want {
			t.Errorf("ParseHostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
