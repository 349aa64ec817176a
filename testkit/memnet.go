package testkit

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/actormesh/actormesh/session"
)

// Address ranges and limits of a MemNetwork.
const (
	memHost          = "127.0.0.1"
	listenPortBase   = 10000 // first port handed out by Listen on port 0
	ephemeralBase    = 40000 // first local port of a dialed connection
	maxPort          = 65535
	acceptBacklog    = 128 // dials a listener queues before Accept; later dials wait for room
	defaultRetrans   = 200 * time.Millisecond
	defaultMaxBuffer = 4 << 20
)

// LinkConfig emulates the path between two endpoints, in both directions.
type LinkConfig struct {
	// Latency is the one-way delay of every write.
	Latency time.Duration
	// Jitter adds a uniformly random delay in [0, Jitter) to every write. Bytes are never reordered: a write is
	// never delivered before the previous one of the same direction.
	Jitter time.Duration
	// Loss is the probability that a write is "lost". On a reliable byte stream a loss shows as a retransmission:
	// the write (and, by FIFO order, everything after it) arrives MemConfig.RetransmitDelay later.
	Loss float64
	// Bandwidth caps each direction at this many bytes per second (0: unlimited); writes queue behind each other
	// for their transmission time.
	Bandwidth int64
}

// MemConfig configures a MemNetwork.
type MemConfig struct {
	// Link is the default of every link; SetLink overrides it for a pair of endpoints.
	Link LinkConfig
	// RetransmitDelay is the extra delay of a lost write (default 200ms, Linux's minimum retransmission timeout).
	RetransmitDelay time.Duration
	// MaxBuffered bounds the memory the unread bytes of each direction of a connection hold (default 4 MiB): each
	// write's buffer, rounded up to the buffer pool's size classes (1 KiB at least), as a kernel charges a socket
	// its buffers' true size. Write blocks while the direction is full.
	MaxBuffered int
	// Seed seeds the random jitter and losses (0: a random seed).
	Seed uint64
}

// MemNetwork is an in-process network of MemTransports with emulated links, partitions and failures. It runs no
// goroutine of its own: blocked calls wait on channels and, while they wait for a due time, on a timer.
type MemNetwork struct {
	cfg     MemConfig
	links   atomic.Pointer[map[linkKey]LinkConfig] // copy-on-write overrides of cfg.Link
	written atomic.Int64
	dials   atomic.Int64
	// chunks lends the copies of written bytes that connections hold until they are read: a kernel's socket
	// buffers make no garbage, and neither should the emulation of them.
	chunks *session.BufferPool

	mu            sync.Mutex
	rng           *rand.Rand // seeds the generator of each connection
	listeners     map[string]*memListener
	cuts          map[linkKey]struct{}
	conns         map[*memConnState]struct{}
	usedPorts     map[int]struct{} // ephemeral ports of tracked connections
	nextPort      int
	nextEphemeral int
}

// NewMemNetwork returns an empty network; zero fields of cfg take their defaults.
func NewMemNetwork(cfg MemConfig) *MemNetwork {
	if cfg.RetransmitDelay == 0 {
		cfg.RetransmitDelay = defaultRetrans
	}
	if cfg.MaxBuffered <= 0 {
		cfg.MaxBuffered = defaultMaxBuffer
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &MemNetwork{
		cfg:           cfg,
		rng:           rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		listeners:     make(map[string]*memListener),
		cuts:          make(map[linkKey]struct{}),
		conns:         make(map[*memConnState]struct{}),
		usedPorts:     make(map[int]struct{}),
		nextPort:      listenPortBase,
		nextEphemeral: ephemeralBase,
		chunks:        session.NewBufferPool(),
	}
}

// NewTransport returns a new endpoint (one per node). It is identified by the address it listens on; see Listen.
func (n *MemNetwork) NewTransport() *MemTransport {
	return &MemTransport{
		n:         n,
		listeners: make(map[*memListener]struct{}),
		conns:     make(map[*memConnState]struct{}),
	}
}

// SetLink sets the link between the endpoints listening on a and b (both directions), overriding MemConfig.Link
// for new connections and for later writes of existing ones.
func (n *MemNetwork) SetLink(a, b string, lc LinkConfig) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := make(map[linkKey]LinkConfig)
	if old := n.links.Load(); old != nil {
		m = maps.Clone(*old)
	}
	m[keyOf(canonicalOrRaw(a), canonicalOrRaw(b))] = lc
	n.links.Store(&m)
}

// Cut breaks the link between the endpoints listening on a and b: their connections are reset and dials between
// them fail with ENETUNREACH until Heal or HealAll.
func (n *MemNetwork) Cut(a, b string) {
	n.cut([]linkKey{keyOf(canonicalOrRaw(a), canonicalOrRaw(b))})
}

// Heal restores the link between a and b broken by Cut or Partition.
func (n *MemNetwork) Heal(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cuts, keyOf(canonicalOrRaw(a), canonicalOrRaw(b)))
}

// Partition cuts every link between endpoints of different groups (as Cut does); links within a group, and of
// endpoints in no group, are unaffected. Cuts made earlier stay.
func (n *MemNetwork) Partition(groups ...[]string) {
	var keys []linkKey
	for i, g := range groups {
		for _, h := range groups[i+1:] {
			for _, a := range g {
				for _, b := range h {
					keys = append(keys, keyOf(canonicalOrRaw(a), canonicalOrRaw(b)))
				}
			}
		}
	}
	n.cut(keys)
}

// HealAll removes every cut.
func (n *MemNetwork) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cuts)
}

// BytesWritten is the number of bytes written so far by every connection of the network.
func (n *MemNetwork) BytesWritten() int64 { return n.written.Load() }

// Dials counts the Dial calls made on the network's transports, failed ones included.
func (n *MemNetwork) Dials() int64 { return n.dials.Load() }

// Conns is the number of open connections: a connection counts until both ends are closed or it is reset.
func (n *MemNetwork) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.conns)
}

func (n *MemNetwork) cut(keys []linkKey) {
	n.mu.Lock()
	cut := make(map[linkKey]struct{}, len(keys))
	for _, k := range keys {
		n.cuts[k] = struct{}{}
		cut[k] = struct{}{}
	}
	var doomed []*memConnState
	for s := range n.conns {
		if _, ok := cut[s.link]; ok {
			doomed = append(doomed, s)
		}
	}
	n.mu.Unlock()
	for _, s := range doomed {
		s.abort()
	}
}

func (n *MemNetwork) linkConfig(k linkKey) LinkConfig {
	if m := n.links.Load(); m != nil {
		if lc, ok := (*m)[k]; ok {
			return lc
		}
	}
	return n.cfg.Link
}

// untrack forgets a connection that is fully closed or reset. It is idempotent.
func (n *MemNetwork) untrack(s *memConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.conns[s]; !ok {
		return
	}
	delete(n.conns, s)
	delete(n.usedPorts, s.ephemeral)
	delete(s.tr[0].conns, s)
	delete(s.tr[1].conns, s)
}

// freeListenPort returns an unused port on host for Listen on port 0, or 0 when there is none. Called with n.mu.
func (n *MemNetwork) freeListenPort(host string) int {
	for range ephemeralBase - listenPortBase {
		p := n.nextPort
		if n.nextPort++; n.nextPort >= ephemeralBase {
			n.nextPort = listenPortBase
		}
		if _, busy := n.listeners[joinHostPort(host, p)]; !busy {
			return p
		}
	}
	return 0
}

// ephemeralPort returns an unused local port for a dialed connection, or 0 when there is none. Called with n.mu.
func (n *MemNetwork) ephemeralPort() int {
	for range maxPort - ephemeralBase + 1 {
		p := n.nextEphemeral
		if n.nextEphemeral++; n.nextEphemeral > maxPort {
			n.nextEphemeral = ephemeralBase
		}
		_, used := n.usedPorts[p]
		_, listening := n.listeners[joinHostPort(memHost, p)]
		if !used && !listening {
			return p
		}
	}
	return 0
}

// MemTransport is one endpoint of a MemNetwork; it implements session.Transport.
type MemTransport struct {
	n       *MemNetwork
	written atomic.Int64

	// Guarded by n.mu.
	addr      string // the last address listened on: the endpoint's identity for links and cuts
	listeners map[*memListener]struct{}
	conns     map[*memConnState]struct{}
	killed    bool          // by Kill, until the next Listen (a restart)
	kills     uint64        // Kill calls: a dial started before one fails, even once the transport listens again
	killWait  chan struct{} // closed by Kill: wakes the dials waiting for room at a listener (waitChan)
}

// Listen implements session.Transport. Port 0 picks a fresh port (from 10000 up); a host meaning "this machine"
// (empty, unspecified or localhost) is 127.0.0.1. An address in use fails with an error wrapping
// syscall.EADDRINUSE; once its listener is closed it may be listened on again. The address becomes the
// transport's identity for SetLink, Cut and Partition (dials made before any Listen use their ephemeral source
// address).
func (t *MemTransport) Listen(addr string) (net.Listener, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: memNet, Addr: memAddr(addr), Err: err}
	}
	n := t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if port == 0 {
		port = n.freeListenPort(host)
	}
	key := joinHostPort(host, port)
	if _, busy := n.listeners[key]; busy || port == 0 {
		return nil, &net.OpError{Op: "listen", Net: memNet, Addr: memAddr(key), Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	}
	l := &memListener{t: t, addr: memAddr(key)}
	n.listeners[key] = l
	t.listeners[l] = struct{}{}
	t.addr, t.killed = key, false
	return l, nil
}

// Dial implements session.Transport. It first waits one Latency of the link (no jitter or loss), as the SYN
// travels, honouring ctx; then it fails with an error wrapping syscall.ENETUNREACH when the link is cut, or
// syscall.ECONNREFUSED when nothing listens on addr. The connection is established as soon as it is queued for
// Accept; when the listener's queue is full (128), Dial waits for room until ctx ends or the transport is killed.
// The connection's local address is 127.0.0.1 with an ephemeral port (from 40000 up).
func (t *MemTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	t.n.mu.Lock()
	gen := t.kills
	t.n.mu.Unlock()
	t.n.dials.Add(1) // after gen is read: a test that sees the dial counted may kill the transport
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: memNet, Addr: memAddr(addr), Err: err}
	}
	dst := joinHostPort(host, port)
	if err := t.connectDelay(ctx, dst); err != nil {
		return nil, &net.OpError{Op: "dial", Net: memNet, Addr: memAddr(dst), Err: err}
	}
	for {
		c, room, killed, err := t.tryDial(dst, gen)
		if c != nil || err != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, &net.OpError{Op: "dial", Net: memNet, Addr: memAddr(dst), Err: ctx.Err()}
		case <-room:
		case <-killed: // the next try fails with ENETDOWN
		}
	}
}

// Kill fails the endpoint abruptly, as a crashed host: its listeners are closed and every connection it has (or
// has queued at a listener) is reset, discarding both ends' pending data; reads and writes on both ends fail at
// once with an error wrapping syscall.ECONNRESET. Until it listens again (a restart) its dials fail with an error
// wrapping syscall.ENETDOWN, those under way included, even when it listens again before they end: a dial waiting
// out the link's latency used to connect after the "crash", and the killed host went on dialing.
func (t *MemTransport) Kill() {
	n := t.n
	n.mu.Lock()
	t.killed = true
	t.kills++
	broadcast(&t.killWait)
	var doomed []*memConnState
	for l := range t.listeners {
		doomed = append(doomed, l.closeLocked()...)
	}
	for s := range t.conns {
		doomed = append(doomed, s)
	}
	n.mu.Unlock()
	for _, s := range doomed {
		s.abort()
	}
}

// BytesWritten is the number of bytes written so far by the transport's connections.
func (t *MemTransport) BytesWritten() int64 { return t.written.Load() }

// connectDelay waits the link's latency towards dst, or until ctx ends.
func (t *MemTransport) connectDelay(ctx context.Context, dst string) error {
	t.n.mu.Lock()
	src := t.addr
	t.n.mu.Unlock()
	lat := t.n.linkConfig(keyOf(src, dst)).Latency
	if lat <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(lat)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// tryDial queues a connection at dst's listener for a dial that started at the transport's kill count gen. When the
// queue is full it returns a channel closed when there may be room, and one closed when the transport is killed.
func (t *MemTransport) tryDial(dst string, gen uint64) (c net.Conn, room, killed <-chan struct{}, err error) {
	n := t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	fail := func(call string, errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: memNet, Addr: memAddr(dst), Err: os.NewSyscallError(call, errno)}
	}
	if t.killed || t.kills != gen { // a dial of before a crash fails, even after the restart that followed it
		return nil, nil, nil, fail("connect", syscall.ENETDOWN)
	}
	if _, cut := n.cuts[keyOf(t.addr, dst)]; cut && t.addr != "" {
		return nil, nil, nil, fail("connect", syscall.ENETUNREACH)
	}
	l := n.listeners[dst]
	if l == nil {
		return nil, nil, nil, fail("connect", syscall.ECONNREFUSED)
	}
	if len(l.queue) >= acceptBacklog {
		return nil, waitChan(&l.room), waitChan(&t.killWait), nil
	}
	port := n.ephemeralPort()
	if port == 0 {
		return nil, nil, nil, fail("bind", syscall.EADDRNOTAVAIL)
	}
	local := joinHostPort(memHost, port)
	src := t.addr
	if src == "" {
		src = local
	}
	s := &memConnState{
		n:         n,
		link:      keyOf(src, dst),
		tr:        [2]*MemTransport{t, l.t},
		addr:      [2]memAddr{memAddr(local), l.addr},
		ephemeral: port,
		rng:       rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64())),
	}
	n.conns[s] = struct{}{}
	n.usedPorts[port] = struct{}{}
	t.conns[s] = struct{}{}
	l.t.conns[s] = struct{}{}
	l.queue = append(l.queue, s)
	broadcast(&l.acceptable)
	return &memConn{s: s, side: 0}, nil, nil, nil
}

// memListener is a net.Listener of a MemTransport. Its fields are guarded by the network's mutex.
type memListener struct {
	t          *MemTransport
	addr       memAddr
	closed     bool
	queue      []*memConnState // dialed, not yet accepted
	acceptable chan struct{}   // closed when queue grows or the listener closes
	room       chan struct{}   // closed when queue shrinks or the listener closes
}

// Accept waits for a connection; after Close it returns an error wrapping net.ErrClosed.
func (l *memListener) Accept() (net.Conn, error) {
	n := l.t.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		if l.closed {
			return nil, &net.OpError{Op: "accept", Net: memNet, Addr: l.addr, Err: net.ErrClosed}
		}
		if len(l.queue) > 0 {
			s := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			broadcast(&l.room)
			return &memConn{s: s, side: 1}, nil
		}
		ch := waitChan(&l.acceptable)
		n.mu.Unlock()
		<-ch
		n.mu.Lock()
	}
}

// Close stops accepting and resets the queued connections not yet accepted; accepted ones stay open.
func (l *memListener) Close() error {
	l.t.n.mu.Lock()
	doomed := l.closeLocked()
	l.t.n.mu.Unlock()
	for _, s := range doomed {
		s.abort()
	}
	return nil
}

// Addr returns the listening address.
func (l *memListener) Addr() net.Addr { return l.addr }

// closeLocked closes the listener and returns the queued connections for the caller to reset. Called with the
// network's mutex.
func (l *memListener) closeLocked() []*memConnState {
	if l.closed {
		return nil
	}
	l.closed = true
	n := l.t.n
	if n.listeners[string(l.addr)] == l {
		delete(n.listeners, string(l.addr))
	}
	delete(l.t.listeners, l)
	queued := l.queue
	l.queue = nil
	broadcast(&l.acceptable)
	broadcast(&l.room)
	return queued
}

// memNet is the Network() of every MemNetwork address.
const memNet = "mem"

// memAddr is a MemNetwork address, "host:port".
type memAddr string

// Network returns "mem".
func (memAddr) Network() string { return memNet }

// String returns host:port.
func (a memAddr) String() string { return string(a) }

// linkKey names the unordered pair of endpoints of a link.
type linkKey struct{ a, b string }

func keyOf(a, b string) linkKey {
	if b < a {
		a, b = b, a
	}
	return linkKey{a, b}
}

// splitAddr parses host:port, mapping a host that means "this machine" to 127.0.0.1.
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > maxPort {
		return "", 0, errors.New("invalid port " + strconv.Quote(p))
	}
	if host == "" || host == "localhost" {
		return memHost, port, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() {
			return memHost, port, nil
		}
		host = ip.Unmap().String()
	}
	return host, port, nil
}

// canonicalOrRaw returns the canonical form of addr, or addr itself when it does not parse.
func canonicalOrRaw(addr string) string {
	host, port, err := splitAddr(addr)
	if err != nil {
		return addr
	}
	return joinHostPort(host, port)
}

func joinHostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// waitChan returns the channel *ch that the next broadcast closes, creating it if needed.
func waitChan(ch *chan struct{}) <-chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// broadcast wakes every waiter of *ch.
func broadcast(ch *chan struct{}) {
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}
