package actors

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/actormesh/actormesh/session"
)

func testID(b byte) session.NodeID {
	var id session.NodeID
	id[0] = b
	return id
}

func TestBanListExpiry(t *testing.T) {
	l := newBanList(10)
	now := time.Unix(1000, 0)
	l.add(banKey{id: testID(1)}, now.Add(time.Second), "spam", now)
	l.add(banKey{ip: netip.MustParseAddr("192.0.2.7")}, now.Add(time.Minute), "flood", now)

	if reason, ok := l.bannedID(testID(1), now); !ok || reason != "spam" {
		t.Fatalf("bannedID = %q, %v; want spam, true", reason, ok)
	}
	if _, ok := l.bannedID(testID(2), now); ok {
		t.Fatal("a peer never banned is banned")
	}
	if reason, ok := l.bannedIP(netip.MustParseAddr("::ffff:192.0.2.7"), now); !ok || reason != "flood" {
		t.Fatalf("the IPv4-mapped form of a banned IPv4 address is not banned: %q, %v", reason, ok)
	}
	if _, ok := l.bannedID(testID(1), now.Add(time.Second)); ok {
		t.Fatal("a ban is still in force at its expiry")
	}
	if _, ok := l.m[banKey{id: testID(1)}]; ok {
		t.Fatal("an expired ban was not pruned when looked up")
	}
	if _, ok := l.bannedIP(netip.MustParseAddr("192.0.2.7"), now.Add(time.Second)); !ok {
		t.Fatal("a longer ban expired with a shorter one")
	}

	// A new ban replaces the old one, shorter or not.
	l.add(banKey{id: testID(3)}, now.Add(time.Hour), "first", now)
	l.add(banKey{id: testID(3)}, now.Add(time.Second), "second", now)
	if reason, ok := l.bannedID(testID(3), now.Add(2*time.Second)); ok {
		t.Fatalf("the replaced ban is still in force (%q)", reason)
	}

	// A ban already expired is not recorded; remove lifts a ban.
	l.add(banKey{id: testID(4)}, now, "past", now)
	if _, ok := l.bannedID(testID(4), now); ok {
		t.Fatal("a ban expiring now was recorded")
	}
	l.add(banKey{id: testID(5)}, now.Add(time.Hour), "x", now)
	if !l.remove(banKey{id: testID(5)}) || l.remove(banKey{id: testID(5)}) {
		t.Fatal("remove should report the ban once")
	}
	if _, ok := l.bannedID(testID(5), now); ok {
		t.Fatal("a removed ban is in force")
	}
}

func TestBanListIsBounded(t *testing.T) {
	l := newBanList(3)
	now := time.Unix(0, 0)
	l.add(banKey{id: testID(1)}, now.Add(3*time.Hour), "", now)
	l.add(banKey{id: testID(2)}, now.Add(1*time.Hour), "", now) // expires first
	l.add(banKey{ip: netip.MustParseAddr("10.0.0.1")}, now.Add(2*time.Hour), "", now)

	// Replacing an entry of a full list evicts nothing.
	l.add(banKey{id: testID(1)}, now.Add(4*time.Hour), "", now)
	if len(l.m) != 3 {
		t.Fatalf("list holds %d bans after a replacement, want 3", len(l.m))
	}

	l.add(banKey{id: testID(4)}, now.Add(5*time.Hour), "", now)
	if len(l.m) != 3 {
		t.Fatalf("list holds %d bans, bound 3", len(l.m))
	}
	if _, ok := l.bannedID(testID(2), now); ok {
		t.Fatal("the ban expiring first should have made room")
	}
	for _, id := range []byte{1, 4} {
		if _, ok := l.bannedID(testID(id), now); !ok {
			t.Fatalf("ban %d was dropped instead of the one expiring first", id)
		}
	}

	// When expired bans can make room, no ban in force is dropped.
	later := now.Add(150 * time.Minute) // the IP ban (2h) has expired, the others have not
	l.add(banKey{id: testID(5)}, later.Add(time.Minute), "", later)
	for _, id := range []byte{1, 4, 5} {
		if _, ok := l.bannedID(testID(id), later); !ok {
			t.Fatalf("ban %d in force was dropped while an expired one could make room", id)
		}
	}
}

func TestBanListListPrunesAndSorts(t *testing.T) {
	l := newBanList(10)
	now := time.Unix(0, 0)
	ip := netip.MustParseAddr("2001:db8::1")
	l.add(banKey{id: testID(1)}, now.Add(3*time.Second), "c", now)
	l.add(banKey{ip: ip}, now.Add(2*time.Second), "b", now)
	l.add(banKey{id: testID(2)}, now.Add(time.Second), "a", now)

	got := l.list(now.Add(1500 * time.Millisecond))
	if len(got) != 2 {
		t.Fatalf("list has %d bans, want the 2 in force", len(got))
	}
	if got[0].IP != ip || got[0].Reason != "b" || got[1].ID != testID(1) || got[1].IP.IsValid() {
		t.Fatalf("list is not the bans in force, soonest expiry first: %+v", got)
	}
	if len(l.m) != 2 {
		t.Fatalf("list did not prune the expired ban: %d entries", len(l.m))
	}
}

func TestBanAddresses(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9}, "127.0.0.1"},
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3).To16(), Port: 9}, "10.1.2.3"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 9, Zone: "eth0"}, "fe80::1"},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, "invalid IP"},
		{nil, "invalid IP"},
	} {
		if got := addrIP(c.addr).String(); got != c.want {
			t.Errorf("addrIP(%v) = %s, want %s", c.addr, got, c.want)
		}
	}
	if got := hostIP("[::ffff:192.0.2.1]:30303"); got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("hostIP of a mapped address = %v", got)
	}
	if got := hostIP("example.com:1"); got.IsValid() {
		t.Errorf("hostIP of a host name = %v, want none", got)
	}
}

func TestClipReason(t *testing.T) {
	long := strings.Repeat("é", maxBanReason) // 2 bytes a rune: the cut falls inside one
	got := clipReason(long)
	if len(got) > maxBanReason || !utf8.ValidString(got) || !strings.HasPrefix(long, got) {
		t.Fatalf("clipReason gave %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
	if got := clipReason("bad \xff byte"); !utf8.ValidString(got) {
		t.Fatalf("clipReason kept invalid UTF-8: %q", got)
	}
	if got := clipReason("short"); got != "short" {
		t.Fatalf("clipReason changed a short reason: %q", got)
	}
}

func TestConfigValidatesInboundThrottle(t *testing.T) {
	for name, change := range map[string]func(*Config){
		"zero rate":  func(c *Config) { c.InboundPerIPRate = 0 },
		"zero burst": func(c *Config) { c.InboundPerIPBurst = 0 },
	} {
		cfg := DefaultConfig()
		change(&cfg)
		if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate gave %v, want ErrInvalidConfig", name, err)
		}
	}
}
