package testkit_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
	"github.com/actormesh/actormesh/testkit/poll"
)

var _ session.Transport = (*testkit.MemTransport)(nil)

// leakCheck fails the test if goroutines outlive it (checked after every other cleanup).
func leakCheck(t *testing.T) {
	t.Cleanup(func() {
		goleak.VerifyNone(t,
			// protoactor's dead-letter throttle runs a one-shot timer goroutine.
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1"),
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1"),
		)
	})
}

// endpoint is a transport listening on a fresh port.
type endpoint struct {
	tr   *testkit.MemTransport
	ln   net.Listener
	addr string
}

func newEndpoint(t testing.TB, mn *testkit.MemNetwork) *endpoint {
	t.Helper()
	tr := mn.NewTransport()
	ln, err := tr.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &endpoint{tr: tr, ln: ln, addr: ln.Addr().String()}
}

func dial(from *endpoint, to string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return from.tr.Dial(ctx, to)
}

// connect dials to from from and accepts it: c is the dialer's end, s the acceptor's.
// connectedPair returns the two ends of a connection between two fresh endpoints of mn.
func connectedPair(t testing.TB, mn *testkit.MemNetwork) (c, s net.Conn) {
	t.Helper()
	return connect(t, newEndpoint(t, mn), newEndpoint(t, mn))
}

func connect(t testing.TB, from, to *endpoint) (c, s net.Conn) {
	t.Helper()
	c, err := dial(from, to.addr)
	if err != nil {
		t.Fatalf("dial %s: %v", to.addr, err)
	}
	s, err = to.ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return c, s
}

// readN reads exactly n bytes under a generous deadline.
func readN(t testing.TB, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func write(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	if n, err := c.Write(b); err != nil || n != len(b) {
		t.Fatalf("write: %d/%d, %v", n, len(b), err)
	}
}

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want an error wrapping %v", what, err, target)
	}
}

func TestMemKillResetsAndRestart(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: 50 * time.Millisecond}})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)
	write(t, c, []byte("pending"))
	write(t, s, []byte("pending too"))
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 64))
		blocked <- err
	}()

	// A dial of b's under way (waiting out the link's latency) when b is killed fails, as does any later one until
	// b listens again: it used to connect after the "crash".
	inFlight := make(chan error, 1)
	go func() {
		c, err := b.tr.Dial(context.Background(), a.addr)
		if c != nil {
			_ = c.Close()
		}
		inFlight <- err
	}()
	b.tr.Kill()
	wantErr(t, "a dial under way as its host was killed", <-inFlight, syscall.ENETDOWN)
	_, err := b.tr.Dial(context.Background(), a.addr)
	wantErr(t, "a dial of the killed host", err, syscall.ENETDOWN)
	select {
	case err := <-blocked:
		wantErr(t, "blocked read on the surviving end", err, syscall.ECONNRESET)
	case <-time.After(10 * time.Second):
		t.Fatal("kill did not wake the peer's blocked read")
	}
	for name, conn := range map[string]net.Conn{"dialer": c, "killed acceptor": s} {
		_, err := conn.Read(make([]byte, 64))
		wantErr(t, name+" read after kill", err, syscall.ECONNRESET)
		_, err = conn.Write([]byte("x"))
		wantErr(t, name+" write after kill", err, syscall.ECONNRESET)
	}
	_, err = b.ln.Accept()
	wantErr(t, "accept on the killed listener", err, net.ErrClosed)
	if n := mn.Conns(); n != 0 {
		t.Fatalf("after kill: Conns() = %d, want 0", n)
	}

	// Restart on the same address.
	ln, err := b.tr.Listen(b.addr)
	if err != nil {
		t.Fatalf("listen again on %s after kill: %v", b.addr, err)
	}
	b.ln = ln
	t.Cleanup(func() { _ = ln.Close() })
	c2, s2 := connect(t, a, b)
	write(t, c2, []byte("again"))
	if got := readN(t, s2, 5); string(got) != "again" {
		t.Fatalf("after restart: %q", got)
	}
}

func TestMemCutAndHeal(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a, b, x := newEndpoint(t, mn), newEndpoint(t, mn), newEndpoint(t, mn)
	c, _ := connect(t, a, b)
	connect(t, a, x)

	mn.Cut(a.addr, b.addr)
	_, err := c.Read(make([]byte, 1))
	wantErr(t, "existing connection across the cut", err, syscall.ECONNRESET)
	_, err = dial(a, b.addr)
	wantErr(t, "dial a->b across the cut", err, syscall.ENETUNREACH)
	_, err = dial(b, a.addr)
	wantErr(t, "dial b->a across the cut", err, syscall.ENETUNREACH)
	if n := mn.Conns(); n != 1 {
		t.Fatalf("the a-x connection should survive: Conns() = %d", n)
	}
	connect(t, a, x)

	mn.Heal(a.addr, b.addr)
	c2, s2 := connect(t, a, b)
	write(t, c2, []byte("healed"))
	if got := readN(t, s2, 6); string(got) != "healed" {
		t.Fatalf("after heal: %q", got)
	}
}

func TestMemPartition(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a, b, x, y := newEndpoint(t, mn), newEndpoint(t, mn), newEndpoint(t, mn), newEndpoint(t, mn)
	cross, _ := connect(t, a, x)
	within, _ := connect(t, a, b)

	mn.Partition([]string{a.addr, b.addr}, []string{x.addr})
	_, err := cross.Read(make([]byte, 1))
	wantErr(t, "connection across the partition", err, syscall.ECONNRESET)
	for _, p := range [][2]*endpoint{{a, x}, {x, b}} {
		_, err := dial(p[0], p[1].addr)
		wantErr(t, "dial across the partition", err, syscall.ENETUNREACH)
	}
	write(t, within, []byte("ok"))
	for _, p := range [][2]*endpoint{{a, b}, {y, a}, {y, x}, {x, y}} {
		connect(t, p[0], p[1])
	}

	mn.HealAll()
	connect(t, a, x)
	connect(t, x, b)
}

func TestMemConnectionRefused(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	tr := mn.NewTransport()
	_, err := tr.Dial(context.Background(), "127.0.0.1:1")
	wantErr(t, "dial without a listener", err, syscall.ECONNREFUSED)

	b := newEndpoint(t, mn)
	_ = b.ln.Close()
	_, err = tr.Dial(context.Background(), b.addr)
	wantErr(t, "dial a closed listener", err, syscall.ECONNREFUSED)
	_, err = b.ln.Accept()
	wantErr(t, "accept on a closed listener", err, net.ErrClosed)
}

func TestMemAddressInUse(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a := newEndpoint(t, mn)
	other := mn.NewTransport()
	_, err := other.Listen(a.addr)
	wantErr(t, "listen on a used address", err, syscall.EADDRINUSE)
	_, port, _ := net.SplitHostPort(a.addr)
	_, err = other.Listen("localhost:" + port)
	wantErr(t, "listen on a used address by another name", err, syscall.EADDRINUSE)

	ln, err := other.Listen("127.0.0.1:0")
	if err != nil || ln.Addr().String() == a.addr {
		t.Fatalf("port 0 gave %v, %v; want a fresh address", ln, err)
	}
	_ = ln.Close()

	_ = a.ln.Close()
	ln, err = other.Listen(a.addr)
	if err != nil {
		t.Fatalf("listen on %s after its listener closed: %v", a.addr, err)
	}
	_ = ln.Close()
}

func TestMemSetLinkAffectsExistingConn(t *testing.T) {
	leakCheck(t)
	const lat = 40 * time.Millisecond
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)
	mn.SetLink(b.addr, a.addr, testkit.LinkConfig{Latency: lat})
	for _, dir := range [][2]net.Conn{{c, s}, {s, c}} {
		start := time.Now()
		write(t, dir[0], []byte("x"))
		readN(t, dir[1], 1)
		if d := time.Since(start); d < lat {
			t.Fatalf("write after SetLink delivered after %v, before %v", d, lat)
		}
	}
}

func TestMemDialBacklogAndListenerClose(t *testing.T) {
	leakCheck(t)
	const backlog = 128
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	var queued []net.Conn
	for range backlog {
		c, err := dial(a, b.addr)
		if err != nil {
			t.Fatalf("dial into the backlog: %v", err)
		}
		queued = append(queued, c)
	}
	defer func() {
		for _, c := range queued {
			_ = c.Close()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	_, err := a.tr.Dial(ctx, b.addr)
	cancel()
	wantErr(t, "dial into a full backlog", err, context.DeadlineExceeded)

	type dialResult struct {
		c   net.Conn
		err error
	}
	waiting := make(chan dialResult, 1)
	go func() {
		c, err := dial(a, b.addr)
		waiting <- dialResult{c, err}
	}()
	accepted, err := b.ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	defer accepted.Close()
	r := <-waiting
	if r.err != nil {
		t.Fatalf("dial waiting for room: %v", r.err)
	}
	queued = append(queued, r.c)

	// Closing the listener resets the queued dials but not the accepted connection.
	_ = b.ln.Close()
	_, err = queued[1].Read(make([]byte, 1))
	wantErr(t, "queued dial after listener close", err, syscall.ECONNRESET)
	write(t, queued[0], []byte("still"))
	if got := readN(t, accepted, 5); string(got) != "still" {
		t.Fatalf("accepted connection after listener close: %q", got)
	}
	if n := mn.Conns(); n != 1 {
		t.Fatalf("Conns() = %d, want only the accepted one", n)
	}
}

func TestMemCounters(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)
	write(t, c, make([]byte, 100))
	write(t, s, make([]byte, 50))
	if got := [3]int64{mn.BytesWritten(), a.tr.BytesWritten(), b.tr.BytesWritten()}; got != [3]int64{150, 100, 50} {
		t.Fatalf("bytes written (network, a, b) = %v, want [150 100 50]", got)
	}
	if n := mn.Conns(); n != 1 {
		t.Fatalf("Conns() = %d, want 1", n)
	}
	_ = c.Close()
	_ = s.Close()
	if n := mn.Conns(); n != 0 {
		t.Fatalf("Conns() = %d after closing, want 0", n)
	}
}

func TestMemNetworkCarriesNodes(t *testing.T) {
	leakCheck(t)
	const lat = 2 * time.Millisecond
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: lat}})
	trs := []*testkit.MemTransport{mn.NewTransport(), mn.NewTransport()}
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.Transport = trs[i]
		cfg.DisableDiscovery = true
		cfg.RedialBase = 10 * time.Millisecond
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	nw.Connect(0, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rtt, err := a.Ping(ctx, b.ID())
	if err != nil {
		t.Fatalf("ping over memnet: %v", err)
	}
	if rtt < 2*lat {
		t.Fatalf("ping rtt %v below twice the %v link latency", rtt, lat)
	}
	if p := a.Peers(); len(p) != 1 || p[0].RemoteAddr != b.Addr().Addr {
		t.Fatalf("a's peers %+v, want b at %s", p, b.Addr().Addr)
	}

	trs[1].Kill()
	testkit.WaitFor(t, 10*time.Second, func() bool { return len(a.Peers()) == 0 }, "a sees b disconnected")
	testkit.WaitFor(t, 10*time.Second, func() bool { return len(b.Peers()) == 0 }, "b sees a disconnected")
	if mn.BytesWritten() == 0 || trs[0].BytesWritten() == 0 {
		t.Fatal("no bytes counted")
	}
}

// MaxBuffered bounds the memory a direction's unread writes hold, not their bytes: 1-byte writes to a peer that
// never reads each took a pooled buffer of 1 KiB, and a 256 KiB bound held 278 MiB.
func TestMemMaxBufferedBoundsTheMemoryOfSmallWrites(t *testing.T) {
	leakCheck(t)
	const bound = 64 << 10
	mn := testkit.NewMemNetwork(testkit.MemConfig{MaxBuffered: bound})
	c, _ := connectedPair(t, mn) // the accepting end never reads
	if err := c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for ; writes < bound; writes++ {
		if _, err := c.Write([]byte{1}); err != nil {
			wantErr(t, "a write past the bound", err, os.ErrDeadlineExceeded)
			break
		}
	}
	if writes*1024 > bound+1024 {
		t.Fatalf("%d one-byte writes buffered under MaxBuffered = %d: over a KiB of memory each", writes, bound)
	}
}

// A dial under way when its host is killed fails with ENETDOWN even when the host listens again (restarts) before
// the dial's latency is over: it connected after the restart, as if the crash had not happened. Malformed dials are
// counted too, as Dials says.
func TestMemDialOfBeforeAKillFailsAfterTheRestart(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: 200 * time.Millisecond}})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	before := mn.Dials()
	res := make(chan error, 1)
	go func() {
		c, err := b.tr.Dial(context.Background(), a.addr)
		if c != nil {
			_ = c.Close()
		}
		res <- err
	}()
	poll.Until(t, 5*time.Second, func() bool { return mn.Dials() == before+1 }, "the dial to start")
	b.tr.Kill()
	ln, err := b.tr.Listen(b.addr) // the restart
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	wantErr(t, "a dial under way when its host was killed and restarted", <-res, syscall.ENETDOWN)
	c, err := b.tr.Dial(context.Background(), a.addr) // a dial after the restart goes through
	if err != nil {
		t.Fatalf("a dial after the restart: %v", err)
	}
	_ = c.Close()
	if _, err := b.tr.Dial(context.Background(), "no port"); err == nil || mn.Dials() != before+3 {
		t.Fatalf("a malformed dial: %v, Dials %d; want an error and %d", err, mn.Dials(), before+3)
	}
}

// Two concurrent Reads (net.Conn allows them) both get the bytes due for them: the link's due timer, shared, woke
// one reader, and the other waited for good when the first left bytes behind.
func TestMemConcurrentReadersBothWake(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: 20 * time.Millisecond}})
	for round := range 20 {
		c, s := connectedPair(t, mn)
		got := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := s.Read(make([]byte, 1))
				got <- err
			}()
		}
		write(t, c, []byte("hi"))
		for i := range 2 {
			select {
			case err := <-got:
				if err != nil {
					t.Fatalf("round %d: read %d: %v", round, i, err)
				}
			case <-time.After(5 * time.Second):
				_ = s.SetReadDeadline(time.Now()) // releases it, so that the test's goroutine ends
				t.Fatalf("round %d: a 1-byte read still blocked 5 s after 2 bytes were due", round)
			}
		}
		_ = c.Close()
		_ = s.Close()
	}
}

// Several WithConfig and WithStarted options apply in their order (the last one replaced the others).
func TestNetworkOptionsCompose(t *testing.T) {
	var started []string
	var final actors.Config
	testkit.NewNetwork(t, 1,
		testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery, cfg.NetworkID = true, "first" }),
		testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.NetworkID += "+second" }),
		testkit.WithConfig(func(_ int, cfg *actors.Config) { final = *cfg }),
		testkit.WithStarted(func(int, *actors.Node) { started = append(started, "first") }),
		testkit.WithStarted(func(int, *actors.Node) { started = append(started, "second") }))
	if final.NetworkID != "first+second" || !final.DisableDiscovery {
		t.Fatalf("NetworkID %q, DisableDiscovery %v; want both WithConfig applied in order", final.NetworkID, final.DisableDiscovery)
	}
	if len(started) != 2 || started[0] != "first" || started[1] != "second" {
		t.Fatalf("WithStarted calls %v, want both in order", started)
	}
}

// The ephemeral ports of closed connections are handed out again: a long run opens more connections than there are
// ports (25536, from 40000 up), and its dials would then fail with EADDRNOTAVAIL.
func TestMemEphemeralPortsOfClosedConnectionsAreReused(t *testing.T) {
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	from, to := newEndpoint(t, mn), newEndpoint(t, mn)
	for i := range 30000 {
		c, err := dial(from, to.addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		s, err := to.ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		_ = s.Close()
	}
	if n := mn.Conns(); n != 0 {
		t.Fatalf("%d connections open after closing them all, want 0", n)
	}
}
