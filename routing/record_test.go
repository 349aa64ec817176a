package routing

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
	"google.golang.org/protobuf/proto"
)

// identity returns the deterministic identity number n.
func identity(t *testing.T, n byte) *session.Identity {
	t.Helper()
	id, err := session.IdentityFromSeed(bytes.Repeat([]byte{n}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestRecordRoundTrip(t *testing.T) {
	id := identity(t, 1)
	addrs := []string{"192.0.2.1:4001", "[2001:db8::1]:4001", "node.example:4001"}
	r, err := NewRecord(id, 7, addrs)
	if err != nil {
		t.Fatal(err)
	}
	addrs[0] = "changed:1" // NewRecord must have copied the slice
	wire, err := proto.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got messages.NodeRecord
	if err := proto.Unmarshal(wire, &got); err != nil {
		t.Fatal(err)
	}
	nid, err := VerifyRecord(&got)
	if err != nil || nid != id.NodeID() {
		t.Fatalf("VerifyRecord = %s, %v", nid.Short(), err)
	}
	e, err := EntryFromRecord(&got)
	if err != nil || e.ID != nid || e.Key != KeyOf(nid) || e.Addr != "192.0.2.1:4001" || e.Record != &got {
		t.Fatalf("EntryFromRecord = %+v, %v", e, err)
	}
}

// TestRecordSigningBytes pins the signed encoding, which other implementations must reproduce.
func TestRecordSigningBytes(t *testing.T) {
	var id session.NodeID
	id[0], id[31] = 0xaa, 0xbb
	got := recordSigningBytes(id, 0x0102, []string{"a:1", "bc:22"})
	want := "actormesh-record-v1:" + string(id[:]) + "\x00\x00\x00\x00\x00\x00\x01\x02" + "\x00\x03a:1" + "\x00\x05bc:22"
	if string(got) != want {
		t.Fatalf("signing bytes\n got %s\nwant %s", hex.EncodeToString(got), hex.EncodeToString([]byte(want)))
	}
}

// An address whose host name ends in a number is refused: some resolvers read 127.1, 0x7f.1 or 2130706433 as
// 127.0.0.1, which would pass the loopback checks made of IP addresses; no DNS name ends that way.
func TestRecordsRefuseNumericHostNames(t *testing.T) {
	id := identity(t, 1)
	for _, addr := range []string{"127.1:22", "0x7f.1:22", "0X7F.0X1:22", "2130706433:22", "10.0.0.1.:22", "node.042:22"} {
		if _, err := NewRecord(id, 1, []string{addr}); !errors.Is(err, ErrBadRecord) {
			t.Errorf("NewRecord(%s): %v, want ErrBadRecord", addr, err)
		}
	}
	for _, addr := range []string{"node1.example.com:4001", "1node.example:4001", "0x.example:4001", "x0:1", "[::1]:1"} {
		if _, err := NewRecord(id, 1, []string{addr}); err != nil {
			t.Errorf("NewRecord(%s): %v", addr, err)
		}
	}
}

func TestForgedRecordsRejected(t *testing.T) {
	owner, mallory := identity(t, 1), identity(t, 2)
	good, err := NewRecord(owner, 5, []string{"192.0.2.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	forgedByOther, _ := NewRecord(mallory, 6, []string{"198.51.100.9:4001"})
	forgedByOther.Id = owner.NodeID().Bytes() // claims to be owner

	for name, mutate := range map[string]func(r *messages.NodeRecord){
		"signed by another key": func(r *messages.NodeRecord) { proto.Reset(r); proto.Merge(r, forgedByOther) },
		"tampered address":      func(r *messages.NodeRecord) { r.Addrs[0] = "198.51.100.9:4001" },
		"added address":         func(r *messages.NodeRecord) { r.Addrs = append(r.Addrs, "198.51.100.9:4001") },
		"tampered seq":          func(r *messages.NodeRecord) { r.Seq++ },
		"tampered id":           func(r *messages.NodeRecord) { r.Id = mallory.NodeID().Bytes() },
		"flipped signature bit": func(r *messages.NodeRecord) { r.Signature[10] ^= 1 },
		"short signature":       func(r *messages.NodeRecord) { r.Signature = r.Signature[:63] },
		"no signature":          func(r *messages.NodeRecord) { r.Signature = nil },
	} {
		r := proto.Clone(good).(*messages.NodeRecord)
		mutate(r)
		_, err := VerifyRecord(r)
		if !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: error = %v, want ErrBadSignature and ErrBadRecord", name, err)
		}
	}
	for name, r := range map[string]*messages.NodeRecord{
		"nil":      nil,
		"short id": {Id: make([]byte, 31), Addrs: []string{"192.0.2.1:1"}},
		"zero id":  {Id: make([]byte, 32), Addrs: []string{"192.0.2.1:1"}},
	} {
		if _, err := VerifyRecord(r); !errors.Is(err, ErrBadRecord) || errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: error = %v, want ErrBadRecord only", name, err)
		}
	}
}

func TestBadAddressesRejected(t *testing.T) {
	id := identity(t, 3)
	nine := make([]string, 9)
	for i := range nine {
		nine[i] = "192.0.2.1:1"
	}
	for name, addrs := range map[string][]string{
		"none":         nil,
		"nine":         nine,
		"no port":      {"192.0.2.1"},
		"empty host":   {":4001"},
		"port 0":       {"192.0.2.1:0"},
		"port 65536":   {"192.0.2.1:65536"},
		"port text":    {"192.0.2.1:http"},
		"bad ipv6":     {"::1:4001"},
		"brackets":     {"[node.example]:4001"},
		"space":        {"node example:4001"},
		"control":      {"node\n.example:4001"},
		"too long":     {strings.Repeat("a", 250) + ".x:4001"},
		"second bad":   {"192.0.2.1:1", "garbage"},
		"unspecified":  {"0.0.0.0:4001"},
		"unspecified6": {"[::]:4001"},
		"multicast":    {"224.0.0.1:4001"},
		"multicast6":   {"[ff02::1]:4001"},
		"broadcast":    {"255.255.255.255:4001"},
		"mapped any":   {"[::ffff:0.0.0.0]:4001"},
		// an IPv6 zone is an interface name: a terminal control or a newline in it reached node topic-peers' output
		"zone control": {"[fe80::1%\x1bc]:4001"},
		"zone newline": {"[fe80::1%a\nb]:4001"},
	} {
		if _, err := NewRecord(id, 1, addrs); !errors.Is(err, ErrBadRecord) {
			t.Errorf("NewRecord %s: error = %v, want ErrBadRecord", name, err)
		}
		// A correctly signed record with such addresses is rejected too, and not for its signature.
		r := &messages.NodeRecord{Id: id.NodeID().Bytes(), Seq: 1, Addrs: addrs}
		if len(addrs) > 0 && len(addrs[0]) <= 0xffff {
			r.Signature = id.Sign(recordSigningBytes(id.NodeID(), 1, addrs))
		}
		if _, err := VerifyRecord(r); !errors.Is(err, ErrBadRecord) || errors.Is(err, ErrBadSignature) {
			t.Errorf("VerifyRecord %s: error = %v, want ErrBadRecord only", name, err)
		}
	}
	if _, err := NewRecord(id, 1, []string{"[fe80::1%eth0]:4001"}); err != nil {
		t.Errorf("an address with an interface's zone rejected: %v", err)
	}
	if _, err := NewRecord(id, 1, nine[:MaxRecordAddrs]); err != nil {
		t.Errorf("a record of MaxRecordAddrs addresses rejected: %v", err)
	}
	longest := strings.Repeat("a", MaxRecordAddrLen-5) + ":4001"
	if _, err := NewRecord(id, 1, []string{longest}); err != nil {
		t.Errorf("%d-byte address rejected: %v", len(longest), err)
	}
	if _, err := NewRecord(nil, 1, []string{"192.0.2.1:1"}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("nil identity: %v", err)
	}
	if _, err := NewRecord(&session.Identity{}, 1, []string{"192.0.2.1:1"}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("the zero identity (it panicked): %v", err) // an audit's finding
	}
}

func TestRecordBook(t *testing.T) {
	a, b, c := identity(t, 1), identity(t, 2), identity(t, 3)
	rec := func(id *session.Identity, seq uint64, addr string) *messages.NodeRecord {
		r, err := NewRecord(id, seq, []string{addr})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, err := NewRecordBook(0); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewRecordBook(0) error = %v", err)
	}
	book, err := NewRecordBook(2)
	if err != nil {
		t.Fatal(err)
	}
	a5 := rec(a, 5, "192.0.2.1:1")
	if ok, err := book.Put(a5); !ok || err != nil {
		t.Fatalf("first Put = %v, %v", ok, err)
	}
	if ok, err := book.Put(rec(a, 5, "192.0.2.1:1")); ok || err != nil {
		t.Fatalf("same record again = %v, %v; want false, nil", ok, err)
	}
	if ok, err := book.Put(rec(a, 4, "192.0.2.9:1")); ok || !errors.Is(err, ErrStaleRecord) {
		t.Fatalf("lower seq = %v, %v; want ErrStaleRecord", ok, err)
	}
	if ok, err := book.Put(rec(a, 5, "192.0.2.9:1")); ok || !errors.Is(err, ErrStaleRecord) {
		t.Fatalf("same seq, other content = %v, %v; want ErrStaleRecord", ok, err)
	}
	forged := rec(a, 9, "192.0.2.9:1")
	forged.Addrs[0] = "203.0.113.66:1"
	if ok, err := book.Put(forged); ok || !errors.Is(err, ErrBadRecord) {
		t.Fatalf("forged = %v, %v; want ErrBadRecord", ok, err)
	}
	if got, ok := book.Get(a.NodeID()); !ok || got != a5 {
		t.Fatal("rejected records replaced the good one")
	}
	a6 := rec(a, 6, "192.0.2.2:1")
	if ok, err := book.Put(a6); !ok || err != nil {
		t.Fatalf("higher seq = %v, %v", ok, err)
	}
	if got, _ := book.Get(a.NodeID()); got != a6 {
		t.Fatal("higher seq not stored")
	}
	// Capacity 2: adding c evicts the least recently accepted, b.
	book.Put(rec(b, 1, "192.0.2.3:1"))
	book.Put(rec(a, 7, "192.0.2.4:1"))
	book.Put(rec(c, 1, "192.0.2.5:1"))
	if _, ok := book.Get(b.NodeID()); ok || book.Len() != 2 {
		t.Fatalf("eviction: b still held or Len = %d", book.Len())
	}
	if _, ok := book.Get(a.NodeID()); !ok {
		t.Fatal("evicted the wrong record")
	}
	if !book.Remove(a.NodeID()) || book.Remove(a.NodeID()) || book.Len() != 1 {
		t.Fatal("Remove")
	}
}

func TestDialCheck(t *testing.T) {
	cases := []struct {
		own, ip string
		want    error // nil: allowed; errNotUnicast, ErrLoopbackFromNetwork or ErrLocalFromNetwork
	}{
		{"192.0.2.1:9000", "198.51.100.7", nil},
		{"10.1.2.3:9000", "10.0.0.3", nil}, // a private network's nodes dial each other there
		{"10.1.2.3:9000", "198.51.100.7", nil},
		{"10.1.2.3:9000", "127.0.0.1", ErrLoopbackFromNetwork},
		{"10.1.2.3:9000", "169.254.169.254", ErrLocalFromNetwork},
		{"100.64.0.5:9000", "192.168.1.1", nil},
		// A node off a link takes no link-local address at a peer's word: a node in a cloud dialed its metadata
		// service, 169.254.169.254 (an audit's finding).
		{"192.0.2.1:9000", "169.254.169.254", ErrLocalFromNetwork},
		{"192.0.2.1:9000", "fe80::1", ErrLocalFromNetwork},
		// Clouds' metadata and platform services outside the link-local range, and the IPv6 forms a gateway
		// translates to an IPv4 address (NAT64, 6to4), are held to the rule of what they reach.
		{"192.0.2.1:9000", "fd00:ec2::254", ErrLocalFromNetwork},
		{"10.1.2.3:9000", "100.100.100.200", ErrLocalFromNetwork},
		{"192.0.2.1:9000", "168.63.129.16", ErrLocalFromNetwork},
		{"192.0.2.1:9000", "192.0.0.192", ErrLocalFromNetwork},
		{"[2001:db8::1]:9000", "64:ff9b::a9fe:a9fe", ErrLocalFromNetwork},
		{"[2001:db8::1]:9000", "64:ff9b::7f00:1", ErrLoopbackFromNetwork},
		{"[2001:db8::1]:9000", "2002:a9fe:a9fe::1", ErrLocalFromNetwork},
		{"[2001:db8::1]:9000", "2002:7f00:1::1", ErrLoopbackFromNetwork},
		{"[2001:db8::1]:9000", "64:ff9b::c633:6407", nil}, // 198.51.100.7
		{"[2001:db8::1]:9000", "2002:c633:6407::1", nil},
		{"192.0.2.1:9000", "100.100.100.201", nil},
		// A zone does not hide them (a review's finding: the map and the prefixes missed zoned addresses).
		{"192.0.2.1:9000", "fd00:ec2::254%eth0", ErrLocalFromNetwork},
		{"192.0.2.1:9000", "64:ff9b::a9fe:a9fe%eth0", ErrLocalFromNetwork},
		{"192.0.2.1:9000", "64:ff9b::7f00:1%1", ErrLoopbackFromNetwork},
		{"192.0.2.1:9000", "2002:a9fe:a9fe::1%eth0", ErrLocalFromNetwork},
		{"[2001:db8::1]:9000", "::ffff:169.254.0.9", ErrLocalFromNetwork},
		// A public node may have neighbours on its private network (a fleet in one data centre): a review found a
		// rule by its own address refusing them all.
		{"192.0.2.1:9000", "10.0.0.3", nil},
		{"192.0.2.1:9000", "192.168.1.1", nil},
		{"192.0.2.1:9000", "100.64.0.1", nil},
		{"192.0.2.1:9000", "fd00::1", nil},
		// A node known by a host name may be on a private network, not on a link alone.
		{"node.example.com:9000", "10.0.0.3", nil},
		{"node.example.com:9000", "198.51.100.7", nil},
		{"node.example.com:9000", "169.254.169.254", ErrLocalFromNetwork},
		{"[fe80::1]:9000", "fe80::2", nil},
		{"[fe80::1]:9000", "::1", ErrLoopbackFromNetwork},
		{"192.0.2.1:9000", "127.0.0.1", ErrLoopbackFromNetwork},
		{"192.0.2.1:9000", "127.8.9.10", ErrLoopbackFromNetwork},
		{"192.0.2.1:9000", "::1", ErrLoopbackFromNetwork},
		{"192.0.2.1:9000", "::ffff:127.0.0.1", ErrLoopbackFromNetwork},
		{"node.example.com:9000", "127.0.0.1", ErrLoopbackFromNetwork},
		{"127.0.0.1:9000", "127.0.0.1", nil}, // a node on its host's loopback dials its neighbours there
		{"localhost:9000", "::1", nil},
		{"", "127.0.0.1", nil},
		{"127.0.0.1:9000", "0.0.0.0", errNotUnicast},
		{"192.0.2.1:9000", "::", errNotUnicast},
		{"192.0.2.1:9000", "224.0.0.1", errNotUnicast},
		{"192.0.2.1:9000", "255.255.255.255", errNotUnicast},
	}
	for _, c := range cases {
		err := DialCheck(c.own)(netip.MustParseAddr(c.ip))
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("DialCheck(%q)(%s) = %v, want %v", c.own, c.ip, err, c.want)
		}
	}
}

// A record is taken only with an address the node's dial check would let through: a public node's table took a
// peer's record naming a link-local address (169.254.169.254), and its lookups dialed it.
func TestDialableFromHoldsRecordsToTheDialCheck(t *testing.T) {
	public, err := NewRecord(identity(t, 1), 1, []string{"203.0.113.5:30700"})
	if err != nil {
		t.Fatal(err)
	}
	private, err := NewRecord(identity(t, 2), 1, []string{"10.1.2.3:30700"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		local *messages.NodeRecord
		addr  string
		want  bool
	}{
		{public, "198.51.100.7:30700", true},
		{public, "node.example.com:30700", true}, // checked once resolved
		{public, "169.254.169.254:80", false},
		{public, "10.0.0.1:30700", true}, // its private network's neighbours
		{public, "127.0.0.1:30700", false},
		{public, "localhost:30700", false},
		{private, "10.0.0.1:30700", true},
		{private, "169.254.169.254:80", false},
		{nil, "169.254.169.254:80", true}, // a node with no address of its own takes any
	} {
		if got := dialableFrom(c.local, c.addr); got != c.want {
			t.Errorf("dialableFrom(%v, %s) = %v, want %v", c.local.GetAddrs(), c.addr, got, c.want)
		}
	}
}
