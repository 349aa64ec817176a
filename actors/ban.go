package actors

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// ErrBanned: the peer, or the IP address it connects from or is dialed at, is on the node's ban list.
var ErrBanned = errors.New("peer is banned")

const (
	// maxBans bounds the ban list; when it is full, the ban expiring first makes room.
	maxBans = 10000
	// maxBanReason bounds a ban's reason in bytes; it travels to the peer as the disconnect detail.
	maxBanReason = 256
	// inboundThrottleIPs bounds the remote IPs the per-IP inbound throttle tracks.
	inboundThrottleIPs = 4096
)

// Ban is one entry of a node's ban list. Exactly one of ID and IP is set: IP.IsValid() tells an IP ban from a
// NodeID ban.
type Ban struct {
	// ID is the banned peer (zero for an IP ban).
	ID session.NodeID
	// IP is the banned address (the zero Addr for a NodeID ban).
	IP netip.Addr
	// Until is when the ban expires.
	Until time.Time
	// Reason is why the peer was banned; it is sent to the peer as the detail of its BANNED disconnect.
	Reason string
}

// Ban refuses every connection with peer for d and closes a live one with reason BANNED, reason being the detail
// the peer is told. The node stops redialing peer; dials to it fail with ErrBanned. The ban is in force when Ban
// returns: a Send, Request, Ping or Connect to peer after it fails with ErrBanned, though the connection may still
// be closing. The routing table drops peer shortly after (asynchronously), and does not take the copies of its
// record other nodes relay (a newer record it signs comes back; a check of it that fails with ErrBanned drops it
// again), so that this node stops handing it to other nodes in NODES replies. Banning a banned peer again replaces
// its expiry and reason. Ban needs a started node.
func (n *Node) Ban(peer session.NodeID, d time.Duration, reason string) error {
	if d <= 0 {
		return fmt.Errorf("ban %s: %w: duration must be positive, got %v", peer.Short(), ErrInvalidArgument, d)
	}
	if peer == n.ID() {
		return fmt.Errorf("ban: %w", ErrSelf)
	}
	pid, err := n.peerManager()
	if err != nil {
		return err
	}
	n.banNow(pid, &banRequest{key: banKey{id: peer}, until: time.Now().Add(d), reason: clipReason(reason)})
	return nil
}

// BanIP refuses every connection from or to ip for d (inbound ones before any handshake work) and closes the live
// connections with that remote IP with reason BANNED. IPv4-mapped IPv6 addresses ban their IPv4 address. As Ban's,
// the ban is in force when BanIP returns, and the routing table drops the nodes whose record's address is at ip
// (as Ban's peer; an address by host name is not resolved: a check that fails with ErrBanned drops it). BanIP needs
// a started node.
func (n *Node) BanIP(ip netip.Addr, d time.Duration, reason string) error {
	if !ip.IsValid() {
		return fmt.Errorf("ban: %w: invalid IP address", ErrInvalidArgument)
	}
	if d <= 0 {
		return fmt.Errorf("ban %s: %w: duration must be positive, got %v", ip, ErrInvalidArgument, d)
	}
	pid, err := n.peerManager()
	if err != nil {
		return err
	}
	n.banNow(pid, &banRequest{key: banKey{ip: normalizeIP(ip)}, until: time.Now().Add(d), reason: clipReason(reason)})
	return nil
}

// banNow puts req's ban in the ban list, where the node's dials and sends see it at once, asks the peer manager
// to close the connections it covers and stop redialing them, and tells the routing actor, which drops the nodes
// it covers from the routing table (routing.Banned).
func (n *Node) banNow(pid *actor.PID, req *banRequest) {
	n.bans.add(req.key, req.until, req.reason, time.Now())
	n.log.Info().Str("peer", req.key.String()).Time("until", req.until).Str("reason", req.reason).Msg("banned")
	n.system.Root.Send(pid, req)
	if n.routingActor() == nil {
		n.system.Root.Send(n.routing, &routing.Banned{ID: req.key.id, IP: req.key.ip})
	}
}

// Unban lifts the ban on peer; it may connect and be dialed again.
func (n *Node) Unban(peer session.NodeID) error {
	return n.unban(banKey{id: peer})
}

// UnbanIP lifts the ban on ip.
func (n *Node) UnbanIP(ip netip.Addr) error {
	return n.unban(banKey{ip: normalizeIP(ip)})
}

func (n *Node) unban(key banKey) error {
	if _, err := n.peerManager(); err != nil {
		return err
	}
	if n.bans.remove(key) {
		n.log.Info().Str("peer", key.String()).Msg("ban lifted")
	}
	return nil
}

// Bans lists the bans in force, the soonest to expire first. It reflects every Ban and Unban call that returned
// before it. It returns nil for a node that is not running.
func (n *Node) Bans() []Ban {
	if _, err := n.peerManager(); err != nil {
		return nil
	}
	return n.bans.list(time.Now())
}

// bannedConn fails a Send, Request or Ping to peer over pc (nil: none yet) with ErrBanned when peer, or pc's remote
// IP, is banned. The ban list was the peer manager's alone, applied in turn, and a Send right after a Ban took the
// connection the ban was about to close: its message was dropped with it (Stats.QueueDropped), and the admin API
// answered 502, not 403.
func (n *Node) bannedConn(peer session.NodeID, pc *peerConn) error {
	if n.bans.empty() {
		return nil
	}
	var ip netip.Addr
	if pc != nil {
		ip = addrIP(pc.sc.RemoteAddr())
	}
	if reason, banned := n.bans.banned(peer, ip, time.Now()); banned {
		return bannedError(peer, reason)
	}
	return nil
}

// banRequest asks the peer manager to ban a NodeID or an IP and drop its live connections.
type banRequest struct {
	key    banKey
	until  time.Time
	reason string
}

// ban closes the connections a ban covers (Node.banNow put it in the ban list); the node stops redialing them.
func (m *peerManager) ban(req *banRequest) {
	for id, w := range m.wanted {
		if req.key.covers(id, hostIP(w.addr.Addr)) {
			m.unwant(id)
		}
	}
	for id, e := range m.conns {
		if req.key.covers(id, addrIP(e.pc.sc.RemoteAddr())) {
			m.unwant(id)
			e.pc.kept.Store(false)
			e.pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_BANNED, req.reason)
		}
	}
}

// admitInbound decides, before any handshake work, whether a connection from remote may proceed: its IP must not
// be banned, nor over the per-IP inbound rate or MaxInboundPerIP. It returns why it refuses, or "" to admit.
func (m *peerManager) admitInbound(remote net.Addr, now time.Time) string {
	ip := addrIP(remote)
	if !ip.IsValid() {
		return "" // a transport without IP addresses: nothing to check
	}
	if reason, ok := m.n.bans.banned(session.NodeID{}, ip, now); ok {
		return "IP banned: " + reason
	}
	if m.n.cfg.ExemptLoopbackThrottle && ip.IsLoopback() {
		return ""
	}
	host := hostKey(ip)
	if !m.inbound.Allow(host, now) {
		return "per-IP inbound rate exceeded"
	}
	if m.pendingIn[host]+m.inboundFrom(host) >= m.n.cfg.MaxInboundPerIP {
		return "per-IP inbound connections at MaxInboundPerIP"
	}
	return ""
}

// inboundFrom counts the live inbound connections from the host of key hostKey(ip).
func (m *peerManager) inboundFrom(host netip.Addr) int {
	n := 0
	for _, e := range m.conns {
		if !e.pc.outbound && hostKey(addrIP(e.pc.sc.RemoteAddr())) == host {
			n++
		}
	}
	return n
}

// pendInbound counts a handshake in progress from remote against its IP's MaxInboundPerIP, and unpendInbound
// forgets it when the handshake has ended (a connection it made is counted by inboundFrom from then on).
func (m *peerManager) pendInbound(remote net.Addr) {
	if ip := addrIP(remote); ip.IsValid() {
		m.pendingIn[hostKey(ip)]++
	}
}

func (m *peerManager) unpendInbound(remote net.Addr) {
	host := hostKey(addrIP(remote))
	if m.pendingIn[host] <= 1 {
		delete(m.pendingIn, host)
	} else {
		m.pendingIn[host]--
	}
}

// hostKey is what the per-IP inbound limits count a remote address under: an IPv4 address itself, an IPv6
// address's /64, which one host gets whole (they counted exact addresses, and one IPv6 host escaped every limit by
// using another address of its /64 for each connection).
func hostKey(ip netip.Addr) netip.Addr {
	if ip.Is6() && !ip.Is4In6() {
		return netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}

// banned tells whether peer, or the IP ip (when valid), is banned, and why.
func (m *peerManager) banned(peer session.NodeID, ip netip.Addr, now time.Time) (string, bool) {
	return m.n.bans.banned(peer, ip, now)
}

// bannedError is the error of a dial refused by a ban.
func bannedError(peer session.NodeID, reason string) error {
	return fmt.Errorf("%w: %s: %s", ErrBanned, peer.Short(), reason)
}

// banKey names a ban: exactly one of id and ip is set.
type banKey struct {
	id session.NodeID
	ip netip.Addr
}

func (k banKey) String() string {
	if k.ip.IsValid() {
		return k.ip.String()
	}
	return k.id.Short()
}

// covers tells whether the ban applies to a peer with that id connected at ip (ip may be invalid: unknown).
func (k banKey) covers(id session.NodeID, ip netip.Addr) bool {
	if k.ip.IsValid() {
		return ip.IsValid() && ip == k.ip
	}
	return id == k.id
}

type banEntry struct {
	until  time.Time
	reason string
}

// banList is the node's ban list: NodeIDs and IPs banned until a time, with a reason. It is pure (the caller passes
// the time) and bounded: when full, the ban expiring first makes room. Expired bans are pruned lazily. Not safe for
// concurrent use: nodeBans guards it.
type banList struct {
	max int
	m   map[banKey]banEntry
}

func newBanList(max int) *banList {
	return &banList{max: max, m: make(map[banKey]banEntry)}
}

// bannedID reports whether id is banned at now, and why.
func (l *banList) bannedID(id session.NodeID, now time.Time) (reason string, ok bool) {
	return l.lookup(banKey{id: id}, now)
}

// bannedIP reports whether ip is banned at now, and why.
func (l *banList) bannedIP(ip netip.Addr, now time.Time) (reason string, ok bool) {
	return l.lookup(banKey{ip: normalizeIP(ip)}, now)
}

// add bans k until until, replacing an earlier ban of k. A ban already expired at now is not recorded.
func (l *banList) add(k banKey, until time.Time, reason string, now time.Time) {
	if !until.After(now) {
		delete(l.m, k)
		return
	}
	if _, ok := l.m[k]; !ok && len(l.m) >= l.max {
		l.prune(now)
		if len(l.m) >= l.max {
			l.evictFirstExpiring()
		}
	}
	l.m[k] = banEntry{until: until, reason: reason}
}

func (l *banList) lookup(k banKey, now time.Time) (string, bool) {
	e, ok := l.m[k]
	if !ok {
		return "", false
	}
	if !now.Before(e.until) {
		delete(l.m, k)
		return "", false
	}
	return e.reason, true
}

// remove lifts the ban on k, reporting whether there was one.
func (l *banList) remove(k banKey) bool {
	_, ok := l.m[k]
	delete(l.m, k)
	return ok
}

// prune drops the bans expired at now.
func (l *banList) prune(now time.Time) {
	for k, e := range l.m {
		if !now.Before(e.until) {
			delete(l.m, k)
		}
	}
}

func (l *banList) evictFirstExpiring() {
	var victim banKey
	var at time.Time
	first := true
	for k, e := range l.m {
		if first || e.until.Before(at) {
			victim, at, first = k, e.until, false
		}
	}
	delete(l.m, victim)
}

// list returns the bans in force at now, the soonest to expire first, pruning the expired ones.
func (l *banList) list(now time.Time) []Ban {
	l.prune(now)
	out := make([]Ban, 0, len(l.m))
	for k, e := range l.m {
		out = append(out, Ban{ID: k.id, IP: k.ip, Until: e.until, Reason: e.reason})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Until.Equal(b.Until) {
			return a.Until.Before(b.Until)
		}
		if c := a.IP.Compare(b.IP); c != 0 {
			return c < 0
		}
		return bytes.Compare(a.ID[:], b.ID[:]) < 0
	})
	return out
}

// nodeBans is the node's ban list, shared by the peer manager and the goroutines of Ban, Send, Request, Ping and
// Connect: a ban is in force, for all of them, once Ban returns. Safe for concurrent use.
type nodeBans struct {
	mu sync.Mutex
	l  *banList
	// size is the list's length, expired bans included until pruned: at 0, a Send checks nothing and takes no lock.
	size atomic.Int64
}

func newNodeBans(max int) *nodeBans { return &nodeBans{l: newBanList(max)} }

// empty tells whether the list holds no ban.
func (b *nodeBans) empty() bool { return b.size.Load() == 0 }

// add is banList.add.
func (b *nodeBans) add(k banKey, until time.Time, reason string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.l.add(k, until, reason, now)
	b.size.Store(int64(len(b.l.m)))
}

// remove is banList.remove.
func (b *nodeBans) remove(k banKey) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.size.Store(int64(len(b.l.m))) }()
	return b.l.remove(k)
}

// banned tells whether peer (unless zero), or the IP ip (when valid), is banned at now, and why.
func (b *nodeBans) banned(peer session.NodeID, ip netip.Addr, now time.Time) (string, bool) {
	if b.empty() {
		return "", false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.size.Store(int64(len(b.l.m))) }() // lookups prune what expired
	if !peer.IsZero() {
		if reason, ok := b.l.bannedID(peer, now); ok {
			return reason, true
		}
	}
	if ip.IsValid() {
		return b.l.bannedIP(ip, now)
	}
	return "", false
}

// list is banList.list.
func (b *nodeBans) list(now time.Time) []Ban {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() { b.size.Store(int64(len(b.l.m))) }()
	return b.l.list(now)
}

// normalizeIP maps an IPv4-mapped IPv6 address to IPv4 and drops any zone, so one host has one key.
func normalizeIP(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// addrIP returns the IP of a connection's address, or the zero Addr when it has none.
func addrIP(a net.Addr) netip.Addr {
	if a == nil {
		return netip.Addr{}
	}
	if t, ok := a.(*net.TCPAddr); ok {
		return normalizeIP(t.AddrPort().Addr())
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return normalizeIP(ap.Addr())
}

// hostIP returns the IP of a host:port dial address, or the zero Addr when its host is a name (or it is malformed).
func hostIP(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return normalizeIP(ip)
}

// clipReason makes a ban reason fit for the wire: valid UTF-8 (protobuf strings must be) of at most maxBanReason
// bytes.
func clipReason(s string) string { return clipText(s, maxBanReason) }

// clipText returns s as valid UTF-8 (protobuf strings must be) of at most limit bytes, cut at a rune's start, its
// control characters replaced (line breaks and tabs by spaces, the others by U+FFFD): texts a peer chooses reach
// events, errors and logs, where escape sequences and line breaks forged lines or drove terminals (an audit's
// finding).
func clipText(s string, limit int) string {
	if len(s) > 4*limit { // ToValidUTF8 copies the string: not the part that would be cut anyway
		s = s[:4*limit]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsFunc(s, unicode.IsControl) {
		s = strings.Map(func(r rune) rune {
			switch {
			case r == '\n' || r == '\r' || r == '\t':
				return ' '
			case unicode.IsControl(r):
				return utf8.RuneError
			}
			return r
		}, s)
	}
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
