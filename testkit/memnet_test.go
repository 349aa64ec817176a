package testkit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
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

func TestMemEchoRoundTrip(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Seed: 1})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)

	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err != nil {
			done <- err
			return
		}
		_, err := s.Write(bytes.ToUpper(buf))
		done <- err
	}()
	msg := []byte("hello")
	write(t, c, msg)
	msg[0] = 'j' // Write copied its input
	if got := readN(t, c, 5); string(got) != "HELLO" {
		t.Fatalf("echo: got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("echo side: %v", err)
	}

	for _, tc := range []struct {
		name     string
		addr     net.Addr
		min, max int
	}{
		{"listener", b.ln.Addr(), 10000, 39999},
		{"dialer local", c.LocalAddr(), 40000, 65535},
		{"acceptor remote", s.RemoteAddr(), 40000, 65535},
		{"acceptor local", s.LocalAddr(), 10000, 39999},
	} {
		host, port, err := net.SplitHostPort(tc.addr.String())
		p, _ := strconv.Atoi(port)
		if err != nil || host != "127.0.0.1" || tc.addr.Network() != "mem" || p < tc.min || p > tc.max {
			t.Errorf("%s address %s/%s: want mem 127.0.0.1:[%d,%d]", tc.name, tc.addr.Network(), tc.addr, tc.min, tc.max)
		}
	}
	if c.RemoteAddr().String() != b.addr || c.LocalAddr().String() != s.RemoteAddr().String() {
		t.Errorf("ends disagree: c %s->%s, s %s<-%s", c.LocalAddr(), c.RemoteAddr(), s.LocalAddr(), s.RemoteAddr())
	}
}

func TestMemFIFOUnderJitter(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{
		Link:        testkit.LinkConfig{Latency: time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.05},
		MaxBuffered: 64 << 10, RetransmitDelay: 5 * time.Millisecond, Seed: 2,
	})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)

	type result struct {
		sum [32]byte
		n   int64
	}
	sent := make(chan result, 1)
	go func() {
		rng := rand.New(rand.NewPCG(3, 4))
		h := sha256.New()
		buf := make([]byte, 8192)
		var total int64
		for range 400 {
			chunk := buf[:1+rng.IntN(len(buf))]
			for i := range chunk {
				chunk[i] = byte(rng.Uint32())
			}
			h.Write(chunk)
			if _, err := c.Write(chunk); err != nil {
				break
			}
			total += int64(len(chunk))
		}
		_ = c.Close()
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n = total
		sent <- r
	}()
	h := sha256.New()
	_ = s.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(h, s)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	want := <-sent
	if n != want.n || !bytes.Equal(h.Sum(nil), want.sum[:]) {
		t.Fatalf("stream corrupted: read %d bytes, wrote %d (checksums differ: %v)", n, want.n, !bytes.Equal(h.Sum(nil), want.sum[:]))
	}
	if got := mn.BytesWritten(); got != want.n {
		t.Fatalf("network counted %d bytes, want %d", got, want.n)
	}
}

func TestMemLatencyLowerBound(t *testing.T) {
	leakCheck(t)
	const lat = 30 * time.Millisecond
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: lat, Jitter: 5 * time.Millisecond}})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)
	for i := range 3 {
		start := time.Now()
		write(t, c, []byte{byte(i)})
		readN(t, s, 1)
		if d := time.Since(start); d < lat {
			t.Fatalf("write %d delivered after %v, before the %v latency", i, d, lat)
		}
	}
	start := time.Now()
	write(t, c, []byte("ping"))
	write(t, s, readN(t, s, 4))
	readN(t, c, 4)
	if d := time.Since(start); d < 2*lat {
		t.Fatalf("round trip took %v, less than twice the %v latency", d, lat)
	}
}

func TestMemBandwidthLowerBound(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Bandwidth: 1_000_000}})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)
	start := time.Now()
	for range 10 {
		write(t, c, make([]byte, 10_000))
	}
	readN(t, s, 100_000)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("100 KB at 1 MB/s arrived in %v, want >= 100ms", d)
	}
}

func TestMemDeadlines(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)
	buf := make([]byte, 8)

	// A deadline in the past fails at once.
	_ = s.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := s.Read(buf)
	wantErr(t, "read past deadline", err, os.ErrDeadlineExceeded)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("deadline error %v is not a net.Error timeout", err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
	n, err := c.Write([]byte("x"))
	wantErr(t, "write past deadline", err, os.ErrDeadlineExceeded)
	if n != 0 {
		t.Fatalf("write past deadline wrote %d bytes", n)
	}
	_ = c.SetWriteDeadline(time.Time{})

	// A future deadline expires while the Read waits, at its last setting: moved later, at the later time; moved
	// earlier, at the earlier one.
	for _, tc := range []struct {
		name        string
		first, last time.Duration
	}{
		{"a 20ms deadline", 20 * time.Millisecond, 20 * time.Millisecond},
		{"a deadline moved from 20 to 80ms", 20 * time.Millisecond, 80 * time.Millisecond},
		{"a deadline moved from 1h to 20ms", time.Hour, 20 * time.Millisecond},
	} {
		start := time.Now()
		_ = s.SetReadDeadline(start.Add(tc.first))
		_ = s.SetReadDeadline(start.Add(tc.last))
		_, err = s.Read(buf)
		wantErr(t, "read with "+tc.name, err, os.ErrDeadlineExceeded)
		if d := time.Since(start); d < tc.last || d > tc.last+10*time.Second {
			t.Fatalf("read with %s failed after %v", tc.name, d)
		}
	}

	// Moving the deadline wakes a blocked Read.
	_ = s.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(buf)
		errc <- err
	}()
	_ = s.SetDeadline(time.Now())
	select {
	case err := <-errc:
		wantErr(t, "read woken by a deadline change", err, os.ErrDeadlineExceeded)
	case <-time.After(10 * time.Second):
		t.Fatal("changing the deadline did not wake the blocked read")
	}

	// Clearing it makes the connection usable again.
	_ = s.SetDeadline(time.Time{})
	write(t, c, []byte("after"))
	if got := readN(t, s, 5); string(got) != "after" {
		t.Fatalf("read after clearing the deadline: %q", got)
	}
}

func TestMemCloseDrainsThenEOF(t *testing.T) {
	leakCheck(t)
	const lat = 20 * time.Millisecond
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: lat}})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)

	start := time.Now()
	write(t, c, []byte("hello "))
	write(t, c, []byte("world"))
	closed := make(chan error, 4)
	for range 4 {
		go func() { closed <- c.Close() }()
	}
	for range 4 {
		if err := <-closed; err != nil {
			t.Fatalf("close: %v", err)
		}
	}
	_, err := c.Read(make([]byte, 1))
	wantErr(t, "read after close", err, net.ErrClosed)
	_, err = c.Write([]byte("x"))
	wantErr(t, "write after close", err, net.ErrClosed)

	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(s) // nil error: it stopped at io.EOF
	if err != nil || string(got) != "hello world" {
		t.Fatalf("peer read %q, %v; want the buffered bytes then EOF", got, err)
	}
	if d := time.Since(start); d < lat {
		t.Fatalf("buffered bytes arrived after %v, before the %v latency", d, lat)
	}
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after EOF: %v", err)
	}
	_, err = s.Write([]byte("x"))
	wantErr(t, "write to a closed peer", err, syscall.EPIPE)
	if n := mn.Conns(); n != 1 {
		t.Fatalf("half-closed connection: Conns() = %d, want 1", n)
	}
	_ = s.Close()
	if n := mn.Conns(); n != 0 {
		t.Fatalf("closed connection: Conns() = %d, want 0", n)
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

	b.tr.Kill()
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
	_, err := b.ln.Accept()
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

func TestMemMaxBufferedBlocksWriter(t *testing.T) {
	leakCheck(t)
	const maxBuf = 1024
	mn := testkit.NewMemNetwork(testkit.MemConfig{MaxBuffered: maxBuf})
	a, b := newEndpoint(t, mn), newEndpoint(t, mn)
	c, s := connect(t, a, b)

	first := bytes.Repeat([]byte{1}, maxBuf)
	write(t, c, first)
	start := time.Now()
	_ = c.SetWriteDeadline(start.Add(30 * time.Millisecond))
	n, err := c.Write([]byte{2})
	wantErr(t, "write into a full direction", err, os.ErrDeadlineExceeded)
	if n != 0 || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("write into a full direction: %d bytes after %v; want 0 after 30ms", n, time.Since(start))
	}

	_ = c.SetWriteDeadline(time.Time{})
	second := bytes.Repeat([]byte{3}, 4*maxBuf)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(second)
		wrote <- err
	}()
	got := readN(t, s, 5*maxBuf)
	if err := <-wrote; err != nil {
		t.Fatalf("write drained by the reader: %v", err)
	}
	if !bytes.Equal(got, append(first, second...)) {
		t.Fatal("bytes written across a full buffer arrived corrupted")
	}

	// A write larger than the room is partial when its deadline passes.
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	n, err = c.Write(make([]byte, 2*maxBuf))
	wantErr(t, "oversized write", err, os.ErrDeadlineExceeded)
	if n != maxBuf {
		t.Fatalf("oversized write stored %d bytes, want %d", n, maxBuf)
	}
}

func TestMemLossDelaysByRetransmit(t *testing.T) {
	leakCheck(t)
	const rto = 30 * time.Millisecond
	roundTrips := func(t *testing.T, loss float64, rounds int) (delayed int) {
		mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Loss: loss}, RetransmitDelay: rto, Seed: 7})
		a, b := newEndpoint(t, mn), newEndpoint(t, mn)
		c, s := connect(t, a, b)
		for range rounds {
			start := time.Now()
			write(t, c, []byte{1})
			readN(t, s, 1)
			if time.Since(start) >= rto {
				delayed++
			}
		}
		return delayed
	}
	t.Run("always", func(t *testing.T) {
		if d := roundTrips(t, 1, 5); d != 5 {
			t.Fatalf("loss 1.0: %d of 5 writes delayed by the retransmit delay", d)
		}
	})
	t.Run("half", func(t *testing.T) {
		// Binomial(40, 0.5) falls outside [8, 32] with probability ~1e-4.
		if d := roundTrips(t, 0.5, 40); d < 8 || d > 32 {
			t.Fatalf("loss 0.5: %d of 40 writes delayed", d)
		}
	})
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

func BenchmarkMemConnThroughput(b *testing.B) {
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	x, y := newEndpoint(b, mn), newEndpoint(b, mn)
	c, s := connect(b, x, y)
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s)
		done <- err
	}()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	_ = c.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMemSetReadDeadline measures moving a connection's read deadline later, as a reader does every second.
func BenchmarkMemSetReadDeadline(b *testing.B) {
	mn := testkit.NewMemNetwork(testkit.MemConfig{})
	_, s := connect(b, newEndpoint(b, mn), newEndpoint(b, mn))
	start := time.Now().Add(30 * time.Second)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = s.SetReadDeadline(start.Add(time.Duration(i) * time.Millisecond))
	}
}
