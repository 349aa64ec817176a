package routing

import (
	"bytes"
	"container/list"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// Limits of a NodeRecord.
const (
	// MaxRecordAddrs is the most addresses a record may carry.
	MaxRecordAddrs = 8
	// MaxRecordAddrLen is the longest address, in bytes, a record may carry.
	MaxRecordAddrLen = 255
)

// recordContext prefixes what an identity signs for a NodeRecord.
const recordContext = "actormesh-record-v1:"

// Errors of records and the RecordBook.
var (
	// ErrBadRecord is wrapped by every error about a malformed or unauthentic record.
	ErrBadRecord = errors.New("routing: bad node record")
	// ErrBadSignature means a record's signature does not verify; errors carrying it also match ErrBadRecord.
	ErrBadSignature = errors.New("routing: bad node record signature")
	// ErrStaleRecord means a record is older than the one known for the same node, or has the same sequence number
	// with different content.
	ErrStaleRecord = errors.New("routing: stale node record")
)

// NewRecord returns the record of id's node with sequence number seq and addresses addrs, signed by id. The
// addresses must pass the checks of VerifyRecord; errors wrap ErrBadRecord.
func NewRecord(id *session.Identity, seq uint64, addrs []string) (*messages.NodeRecord, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("%w: the identity holds no key", ErrBadRecord)
	}
	if err := checkAddrs(addrs); err != nil {
		return nil, err
	}
	nid := id.NodeID()
	r := &messages.NodeRecord{Id: nid.Bytes(), Seq: seq, Addrs: slices.Clone(addrs)}
	r.Signature = id.Sign(recordSigningBytes(nid, seq, addrs))
	return r, nil
}

// VerifyRecord checks r and returns the NodeID of the node it describes. It checks the id length, that there are 1 to
// MaxRecordAddrs addresses, each a host:port of at most MaxRecordAddrLen bytes whose host is an IP address or a host
// name (letters, digits, '-', '.', '_') and whose port is in 1..65535, and the signature. Errors wrap ErrBadRecord, and also ErrBadSignature when only the signature is wrong.
func VerifyRecord(r *messages.NodeRecord) (session.NodeID, error) {
	if r == nil {
		return session.NodeID{}, fmt.Errorf("%w: nil record", ErrBadRecord)
	}
	id, err := session.NodeIDFromBytes(r.GetId())
	if err != nil {
		return session.NodeID{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if id.IsZero() {
		return session.NodeID{}, fmt.Errorf("%w: zero id", ErrBadRecord)
	}
	if err := checkAddrs(r.GetAddrs()); err != nil {
		return session.NodeID{}, err
	}
	if !id.Verify(recordSigningBytes(id, r.GetSeq(), r.GetAddrs()), r.GetSignature()) {
		return session.NodeID{}, fmt.Errorf("%w: %w: node %s seq %d", ErrBadRecord, ErrBadSignature, id.Short(), r.GetSeq())
	}
	return id, nil
}

// EntryFromRecord verifies r (see VerifyRecord) and returns a table Entry for it: ID, Key, Record (r without any
// field its signature does not cover) and, as Addr, the record's first address. Times and Failures are left zero.
func EntryFromRecord(r *messages.NodeRecord) (Entry, error) {
	id, err := VerifyRecord(r)
	if err != nil {
		return Entry{}, err
	}
	return Entry{ID: id, Key: KeyOf(id), Addr: r.GetAddrs()[0], Record: signedOnly(r)}, nil
}

// signedOnly returns r, or a copy of its signed fields if it carries fields the signature does not cover (unknown
// to this version): any peer relaying a record could add them, and a node keeping them would serve the padding in
// every answer and write it to its peer store.
func signedOnly(r *messages.NodeRecord) *messages.NodeRecord {
	if len(r.ProtoReflect().GetUnknown()) == 0 {
		return r
	}
	return &messages.NodeRecord{Id: bytes.Clone(r.GetId()), Seq: r.GetSeq(), Addrs: slices.Clone(r.GetAddrs()),
		Signature: bytes.Clone(r.GetSignature())}
}

// checkAddrs checks the address list of a record.
func checkAddrs(addrs []string) error {
	if len(addrs) == 0 || len(addrs) > MaxRecordAddrs {
		return fmt.Errorf("%w: %d addresses, want 1..%d", ErrBadRecord, len(addrs), MaxRecordAddrs)
	}
	for i, a := range addrs {
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%w: address %d: %w", ErrBadRecord, i, err)
		}
	}
	return nil
}

// checkAddr checks one host:port address of a record.
func checkAddr(a string) error {
	if len(a) > MaxRecordAddrLen {
		return fmt.Errorf("%d bytes long, limit %d", len(a), MaxRecordAddrLen)
	}
	_, ip, err := splitAddr(a)
	if err == nil && ip.IsValid() && !isUnicast(ip) {
		err = fmt.Errorf("%q: not a unicast address", a)
	}
	return err
}

// isUnicast tells whether ip can be a node's address: not unspecified (a dial of 0.0.0.0 reaches the dialer's own
// host), multicast or the IPv4 broadcast address.
func isUnicast(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !ip.IsUnspecified() && !ip.IsMulticast() && ip != netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

// isLoopbackAddr tells whether the host of host:port a is a loopback IP address or the name localhost (or a name
// under it, RFC 6761), which resolvers answer with one.
func isLoopbackAddr(a string) bool {
	host, ip, err := splitAddr(a)
	if err != nil {
		return false
	}
	if ip.IsValid() {
		return ip.Unmap().IsLoopback()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// dialableFrom tells whether a node whose own record is local may take a record with address addr: one whose IP
// address (if it is one) DialCheck lets through for the node's own address.
func dialableFrom(local *messages.NodeRecord, addr string) bool {
	if local == nil || len(local.GetAddrs()) == 0 {
		return true
	}
	own := local.GetAddrs()[0]
	if isLoopbackAddr(addr) {
		return isLoopbackAddr(own)
	}
	_, ip, err := splitAddr(addr)
	if err != nil || !ip.IsValid() {
		return true // a host name: checked once resolved (DialCheck)
	}
	return scopeAllowed(ownScope(own), ip) == nil
}

// ErrLoopbackFromNetwork is DialCheck's refusal of a loopback address at a node reachable off its host.
var ErrLoopbackFromNetwork = errors.New("a loopback address learned from the network, at a node reachable off its host")

// ErrLocalFromNetwork is DialCheck's refusal of a link-local address at a node that is not on the link alone.
var ErrLocalFromNetwork = errors.New("a link-local address learned from the network, at a node reachable beyond its link")

// errNotUnicast is DialCheck's refusal of an address that is not unicast.
var errNotUnicast = errors.New("not a unicast address")

// addrScope is how far an IP address reaches: its host (loopback), its link (link-local), a private network
// (RFC 1918, the 100.64.0.0/10 of carrier-grade NAT, IPv6 unique local addresses), or everywhere.
type addrScope int

const (
	scopeHost addrScope = iota
	scopeLink
	scopePrivate
	scopeGlobal
	scopeUnknown // a host name: it may resolve to a private network's address
)

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), which netip.Addr.IsPrivate leaves out.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// hostServices are the instance metadata and platform services of clouds that are not in the link-local range:
// a node in such a cloud reaches them as it reaches 169.254.169.254, so they are of link scope. AWS's IPv6
// metadata address, Alibaba Cloud's metadata address (inside carrier-grade NAT's range), Azure's platform
// ("wire server") address, Oracle Cloud's legacy metadata address.
var hostServices = map[netip.Addr]bool{
	netip.MustParseAddr("fd00:ec2::254"):   true,
	netip.MustParseAddr("100.100.100.200"): true,
	netip.MustParseAddr("168.63.129.16"):   true,
	netip.MustParseAddr("192.0.0.192"):     true,
}

// The IPv6 forms that carry an IPv4 address a gateway translates them to: NAT64's well-known prefix (RFC 6052)
// and 6to4 (RFC 3056). An address in them is of its IPv4 address's scope: 64:ff9b::a9fe:a9fe reaches
// 169.254.169.254 through a NAT64 gateway.
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// scopeOf is the scope of ip.
func scopeOf(ip netip.Addr) addrScope {
	ip = ip.WithZone("").Unmap() // a zone does not change where an address reaches (and hid it from the map and prefixes)
	b := ip.As16()
	switch {
	case hostServices[ip]:
		return scopeLink
	case nat64Prefix.Contains(ip):
		return scopeOf(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return scopeOf(netip.AddrFrom4([4]byte(b[2:6])))
	case ip.IsLoopback():
		return scopeHost
	case ip.IsLinkLocalUnicast():
		return scopeLink
	case ip.IsPrivate() || cgnat.Contains(ip):
		return scopePrivate
	}
	return scopeGlobal
}

// PrivateAddr tells whether addr, a host:port, has an IP address of a private network (RFC 1918, 100.64.0.0/10,
// IPv6 unique local; not loopback or link-local), as a node's own address on a fleet's network has: see
// TableConfig.ExemptPrivate.
func PrivateAddr(addr string) bool {
	_, ip, err := splitAddr(addr)
	return err == nil && ip.IsValid() && scopeOf(ip) == scopePrivate
}

// ownScope is the scope of a node's own address: scopeHost for none (a node with no address takes every one).
func ownScope(own string) addrScope {
	if own == "" || isLoopbackAddr(own) {
		return scopeHost
	}
	_, ip, err := splitAddr(own)
	if err != nil || !ip.IsValid() {
		return scopeUnknown
	}
	return scopeOf(ip)
}

// scopeAllowed refuses an address learned from the network that reaches less far than the node's own (of scope
// own), at most as far as a private network: dialing it would reach the node's own host or link at a peer's word
// (a node in a cloud dialing 169.254.169.254, its metadata service). A private network's address is taken at any
// node: a node on a public address may have neighbours on its private network (a fleet in one data centre, a
// container host), which a rule by the node's own address refused; go-ethereum's relay rule
// (netutil.CheckRelayIP) refuses one relayed by a sender off that network, which needs the sender's address.
func scopeAllowed(own addrScope, ip netip.Addr) error {
	own = min(own, scopePrivate) // scopeUnknown (a host name) too
	switch s := scopeOf(ip); {
	case s >= own:
		return nil
	case s == scopeHost:
		return ErrLoopbackFromNetwork
	}
	return ErrLocalFromNetwork
}

// DialCheck returns the check (session.ContextWithAddrCheck) that a node whose own address is own applies to the IP
// addresses a dial of an address learned from the network resolves to: the rules records' addresses are held to
// (checkAddr, dialableFrom), applied once a host name is resolved, so that a name a peer chose cannot lead the node
// to its own host or network. It refuses addresses that are not unicast, and those that reach less far than own
// (scopeAllowed): loopback ones unless own is loopback (or empty), and link-local ones unless own is link-local
// (or loopback).
func DialCheck(own string) func(netip.Addr) error {
	scope := ownScope(own)
	return func(ip netip.Addr) error {
		ip = ip.Unmap()
		if !isUnicast(ip) {
			return errNotUnicast
		}
		return scopeAllowed(scope, ip)
	}
}

// numericName tells whether host name's last label is a number (decimal, or hex with 0x): no DNS name is (top
// level domains are not numeric), but some resolvers read such a name as an IPv4 address in a short or numeric
// form (127.1, 0x7f.1, 2130706433), which would pass the checks made of IP addresses.
func numericName(host string) bool {
	label := strings.TrimSuffix(host, ".")
	label = label[strings.LastIndexByte(label, '.')+1:]
	digits := "0123456789"
	if len(label) > 2 && (label[:2] == "0x" || label[:2] == "0X") {
		label, digits = label[2:], "0123456789abcdefABCDEF"
	}
	return label != "" && strings.Trim(label, digits) == ""
}

// splitAddr parses a host:port address: the port must be in 1..65535 and the host an IP address or a host name of
// letters, digits, '-', '.' and '_'. It returns the host and, when the host is an IP address, that address
// (otherwise the zero netip.Addr).
func splitAddr(a string) (string, netip.Addr, error) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", netip.Addr{}, err
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", netip.Addr{}, fmt.Errorf("%q: port out of range 1..65535", a)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" { // an interface name, as session's addresses take it: any bytes passed, newlines included
			if _, err := session.ParseHostPort(a); err != nil {
				return "", netip.Addr{}, err
			}
		}
		return host, ip, nil
	}
	if host == "" {
		return "", netip.Addr{}, fmt.Errorf("%q: empty host", a)
	}
	if strings.HasPrefix(a, "[") {
		return "", netip.Addr{}, fmt.Errorf("%q: host in brackets is not an IPv6 address", a)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return "", netip.Addr{}, fmt.Errorf("%q: character %q not allowed in a host name", a, r)
		}
	}
	if numericName(host) {
		return "", netip.Addr{}, fmt.Errorf("%q: a host name with a numeric last label (an IP address in another form?)", a)
	}
	return host, netip.Addr{}, nil
}

// recordSigningBytes is the deterministic encoding a record's signature covers:
// recordContext || id || seq (8 bytes big-endian) || for each address: length (2 bytes big-endian) || address.
// The addresses must have passed checkAddrs, so each length fits in two bytes.
func recordSigningBytes(id session.NodeID, seq uint64, addrs []string) []byte {
	n := len(recordContext) + len(id) + 8
	for _, a := range addrs {
		n += 2 + len(a)
	}
	return appendRecordSigningBytes(make([]byte, 0, n), id, seq, addrs)
}

// appendRecordSigningBytes appends recordSigningBytes(id, seq, addrs) to b.
func appendRecordSigningBytes(b []byte, id session.NodeID, seq uint64, addrs []string) []byte {
	b = append(b, recordContext...)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, seq)
	for _, a := range addrs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(a)))
		b = append(b, a...)
	}
	return b
}

// RecordBook holds the latest verified record of up to a fixed number of nodes. When full, adding the record of a
// new node evicts the record least recently accepted. Records handed to and returned by the book are shared, not
// copied: callers must not modify them. The zero RecordBook is not usable: make one with NewRecordBook.
type RecordBook struct {
	capacity int
	byID     map[session.NodeID]*list.Element // elements hold *bookItem
	order    *list.List                       // least recently accepted at the front
}

// bookItem is one record in a RecordBook.
type bookItem struct {
	id     session.NodeID
	record *messages.NodeRecord
}

// NewRecordBook returns an empty RecordBook holding at most capacity records; capacity must be at least 1 (the
// error wraps ErrInvalidConfig otherwise).
func NewRecordBook(capacity int) (*RecordBook, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("%w: record book capacity %d, want >= 1", ErrInvalidConfig, capacity)
	}
	return &RecordBook{capacity: capacity, byID: make(map[session.NodeID]*list.Element), order: list.New()}, nil
}

// Put verifies r and stores it as the latest record of its node. It returns accepted = true when r is new or
// replaces an older record, false with a nil error when r is the record already held, and an error wrapping
// ErrBadRecord (see VerifyRecord) or ErrStaleRecord (a lower sequence number than the one held, or the same one
// with different content) otherwise.
func (b *RecordBook) Put(r *messages.NodeRecord) (accepted bool, err error) {
	id, err := VerifyRecord(r)
	if err != nil {
		return false, err
	}
	if el, ok := b.byID[id]; ok {
		old := el.Value.(*bookItem).record
		switch {
		case r.GetSeq() < old.GetSeq():
			return false, fmt.Errorf("%w: node %s seq %d, have %d", ErrStaleRecord, id.Short(), r.GetSeq(), old.GetSeq())
		case r.GetSeq() == old.GetSeq():
			if slices.Equal(r.GetAddrs(), old.GetAddrs()) {
				return false, nil
			}
			return false, fmt.Errorf("%w: node %s seq %d has different content", ErrStaleRecord, id.Short(), r.GetSeq())
		}
		el.Value.(*bookItem).record = r
		b.order.MoveToBack(el)
		return true, nil
	}
	if b.order.Len() >= b.capacity {
		oldest := b.order.Front()
		delete(b.byID, oldest.Value.(*bookItem).id)
		b.order.Remove(oldest)
	}
	b.byID[id] = b.order.PushBack(&bookItem{id: id, record: r})
	return true, nil
}

// Get returns the record held for id.
func (b *RecordBook) Get(id session.NodeID) (*messages.NodeRecord, bool) {
	el, ok := b.byID[id]
	if !ok {
		return nil, false
	}
	return el.Value.(*bookItem).record, true
}

// Remove drops the record held for id and reports whether there was one.
func (b *RecordBook) Remove(id session.NodeID) bool {
	el, ok := b.byID[id]
	if !ok {
		return false
	}
	delete(b.byID, id)
	b.order.Remove(el)
	return true
}

// Len returns the number of records held.
func (b *RecordBook) Len() int { return len(b.byID) }
