package session

import (
	"fmt"
	"testing"
	"time"

	"github.com/flynn/noise"
)

// BenchmarkCipherSuites compares the two Noise ciphers sealing and opening one 1 KiB transport message.
func BenchmarkCipherSuites(b *testing.B) {
	for _, cf := range []noise.CipherFunc{noise.CipherAESGCM, noise.CipherChaChaPoly} {
		b.Run(cf.CipherName(), func(b *testing.B) {
			suite := noise.NewCipherSuite(noise.DH25519, cf, noise.HashSHA256)
			send := noise.UnsafeNewCipherState(suite, testKey, 0)
			recv := noise.UnsafeNewCipherState(suite, testKey, 0)
			msg := make([]byte, 1024)
			buf := make([]byte, 0, 1024+tagSize)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				ct, err := send.Encrypt(buf[:0], nil, msg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := recv.Decrypt(ct[:0], nil, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConnThroughput sends 1 KiB messages from one Conn to another over TCP loopback, in batches of
// various sizes, with and without a pool for the Conns' buffers, and reports messages per second.
func BenchmarkConnThroughput(b *testing.B) {
	for _, bench := range []struct {
		batchSize int
		pooled    bool
	}{{1, true}, {16, true}, {128, true}, {1, false}, {16, false}, {128, false}} {
		batchSize := bench.batchSize
		b.Run(fmt.Sprintf("batch=%d/pool=%v", batchSize, bench.pooled), func(b *testing.B) {
			a, r := pooledPair(b, bench.pooled)
			defer a.Close()
			defer r.Close()
			msg := make([]byte, 1024)
			batch := make([][]byte, batchSize)
			for i := range batch {
				batch[i] = msg
			}
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			errs := make(chan error, 1)
			go func() {
				for left := b.N; left > 0; left -= batchSize {
					if err := a.WriteMessages(batch[:min(batchSize, left)]...); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
			for range b.N {
				if _, err := r.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// pooledPair returns two Conns connected over TCP, their buffers from one pool if pooled.
func pooledPair(tb testing.TB, pooled bool) (*Conn, *Conn) {
	tb.Helper()
	a, b := testConfig(tb, 1), testConfig(tb, 2)
	if pooled {
		a.Buffers = NewBufferPool()
		b.Buffers = a.Buffers
	}
	dc, ac := tcpPair(tb)
	return handshakeOver(tb, dc, ac, a, b)
}

// BenchmarkConnRoundTrip1KiB sends a 1 KiB message over TCP loopback and waits for the peer to echo it back,
// with the Conns' buffers pooled (one pool for both, as in a node) and not.
func BenchmarkConnRoundTrip1KiB(b *testing.B) {
	for _, pooled := range []bool{true, false} {
		b.Run(fmt.Sprintf("pool=%v", pooled), func(b *testing.B) {
			a, r := pooledPair(b, pooled)
			defer a.Close()
			echoed := make(chan error, 1)
			go func() {
				for {
					m, err := r.ReadMessage()
					if err == nil {
						err = r.WriteMessages(m)
					}
					if err != nil {
						echoed <- err
						return
					}
				}
			}()
			msg := testMessage(1, 1024)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := a.WriteMessages(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := a.ReadMessage(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			a.Close()
			<-echoed
			r.Close()
		})
	}
}
