package testkit_test

// The connections of a MemNetwork, one at a time: the byte stream, its timing and deadlines.

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/testkit"
)

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
	c, s := connectedPair(t, mn)

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
	c, s := connectedPair(t, mn)
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
	c, s := connectedPair(t, mn)
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
	c, s := connectedPair(t, mn)
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
	c, s := connectedPair(t, mn)

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

func TestMemMaxBufferedBlocksWriter(t *testing.T) {
	leakCheck(t)
	const maxBuf = 1024
	mn := testkit.NewMemNetwork(testkit.MemConfig{MaxBuffered: maxBuf})
	c, s := connectedPair(t, mn)

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
		c, s := connectedPair(t, mn)
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

// CloseWrite half-closes an end as a TCP socket's shutdown does: the peer reads what came before, then io.EOF, and
// can still write to the end, which still reads; the end's own writes fail. A graceful close relies on it to read
// what the peer sent before the goodbye (actors' linger).
func TestMemCloseWriteHalfCloses(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: 5 * time.Millisecond}})
	c, s := connectedPair(t, mn)
	write(t, c, []byte("goodbye"))
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	_, err := c.Write([]byte("x"))
	wantErr(t, "write after CloseWrite", err, syscall.EPIPE)
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "goodbye" {
		t.Fatalf("peer read %q, %v; want the bytes written before the half-close, then EOF", got, err)
	}
	write(t, s, []byte("late"))
	if got := readN(t, c, 4); string(got) != "late" {
		t.Fatalf("the half-closed end read %q, want what the peer wrote after", got)
	}
	_ = c.Close()
	_ = s.Close()
}

// CloseWrite succeeds as TCP's shutdown does once the peer has closed its end, and past the write deadline: the end
// still reads what the peer wrote before it closed, then io.EOF. It failed with EPIPE (or the deadline's error),
// and actors' linger, taking the failure for a transport without half-close, stopped reading and dropped the
// peer's last messages. It fails on an end closed already.
func TestMemCloseWriteSucceedsAfterThePeerClosedAndPastTheWriteDeadline(t *testing.T) {
	leakCheck(t)
	mn := testkit.NewMemNetwork(testkit.MemConfig{Link: testkit.LinkConfig{Latency: 5 * time.Millisecond}})
	c, s := connectedPair(t, mn)
	write(t, s, []byte("last words"))
	_ = s.Close()
	_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
	if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite after the peer closed, past the write deadline: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "last words" {
		t.Fatalf("read %q, %v after CloseWrite; want what the peer wrote before it closed, then EOF", got, err)
	}
	_ = c.Close()
	err = c.(interface{ CloseWrite() error }).CloseWrite()
	wantErr(t, "CloseWrite on a closed end", err, net.ErrClosed)
}
