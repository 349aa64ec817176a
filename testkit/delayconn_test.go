package testkit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// tcpPair returns the two ends of a TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	return a, b
}

// delayPair returns a delayConn with the given latency over one end of a TCP connection on 127.0.0.1, and the
// other end; both close when the test ends, and then no goroutine may be left.
func delayPair(t *testing.T, latency time.Duration) (*delayConn, net.Conn) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) }) // cleanups run last in, first out: after the closes below
	a, b := tcpPair(t)
	t.Cleanup(func() { b.Close() })
	d := newDelayConn(a, latency)
	t.Cleanup(func() { d.Close() })
	return d, b
}

func TestDelayConnDeliversEachWriteAfterTheLatencyInOrder(t *testing.T) {
	defer goleak.VerifyNone(t)
	const latency = 40 * time.Millisecond
	a, b := tcpPair(t)
	defer b.Close()
	d := newDelayConn(a, latency)
	var want []byte
	start := time.Now()
	for i := range 50 {
		chunk := bytes.Repeat([]byte{byte(i)}, 100+i)
		want = append(want, chunk...)
		if n, err := d.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if took := time.Since(start); took >= latency {
		t.Fatalf("writes took %v: they must not wait for the link", took)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(b, got[:1]); err != nil {
		t.Fatal(err)
	}
	if since := time.Since(start); since < latency {
		t.Fatalf("first byte arrived after %v, before the latency %v", since, latency)
	}
	if _, err := io.ReadFull(b, got[1:]); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("stream differs (%v)", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// TestDelayConnHoldsNoGoroutineWhileIdle checks that the sender runs only while writes are pending, and that
// writes after an idle spell start it again and keep their order.
func TestDelayConnHoldsNoGoroutineWhileIdle(t *testing.T) {
	d, b := delayPair(t, 5*time.Millisecond)
	sending := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.sending
	}
	if sending() {
		t.Fatal("a new connection runs a sender before any write")
	}
	for round := range 3 {
		chunk := bytes.Repeat([]byte{byte(round)}, 64)
		if _, err := d.Write(chunk[:32]); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Write(chunk[32:]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(chunk))
		if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, chunk) {
			t.Fatalf("round %d: read %v, %v", round, got, err)
		}
		for deadline := time.Now().Add(5 * time.Second); sending(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the sender still runs with nothing queued", round)
			}
		}
	}
}

func TestDelayConnWriteHonoursTheDeadlineWhenTheQueueIsFullAndReportsFailures(t *testing.T) {
	defer goleak.VerifyNone(t)
	a, b := tcpPair(t)
	d := newDelayConn(a, time.Hour)  // nothing leaves the queue
	for range delayQueueChunks + 1 { // the sender holds one, waiting for its time
		if _, err := d.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SetWriteDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := d.Write([]byte("x"))
	d.Close()
	b.Close()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write to a full queue past the deadline: %v", err)
	}

	// A write the underlying connection refuses fails the later ones.
	a, b = tcpPair(t)
	defer b.Close()
	d = newDelayConn(a, time.Millisecond)
	defer d.Close()
	a.Close()
	if _, err := d.Write([]byte("x")); err != nil {
		t.Fatalf("the first write is only queued: %v", err)
	}
	if err := Poll(t.Context(), 5*time.Second, func() bool {
		_, err := d.Write([]byte("y"))
		return errors.Is(err, net.ErrClosed)
	}); err != nil {
		t.Fatal("writes after the failed one do not report it")
	}
}

// A half-close follows the writes made before it, as a TCP socket's FIN follows its data: the linger after a
// goodbye relies on it (a FIN sent at once would make the goodbye's delayed write fail).
func TestDelayConnCloseWriteFollowsTheQueuedWrites(t *testing.T) {
	d, b := delayPair(t, 30*time.Millisecond)
	if _, err := d.Write([]byte("goodbye")); err != nil {
		t.Fatal(err)
	}
	if err := d.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := b.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "goodbye" {
		t.Fatalf("read %q, %v; want the write, then EOF", got, err)
	}
	// A write after the half-close fails in the sender, and Write reports it from then on.
	if err := Poll(context.Background(), 5*time.Second, func() bool { _, err := d.Write([]byte("x")); return err != nil }); err != nil {
		t.Fatal("writes after CloseWrite kept succeeding")
	}
}
