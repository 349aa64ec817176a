package session

import (
	"bytes"
	"testing"

	"github.com/flynn/noise"
)

// The allocation-free cipher must be noise.CipherAESGCM on the wire: each seals what the other opens.
func TestAESGCMMatchesNoiseAESGCM(t *testing.T) {
	var k [32]byte
	for i := range k {
		k[i] = byte(i * 7)
	}
	ours, theirs := aesGCM{}.Cipher(k), noise.CipherAESGCM.Cipher(k)
	if (aesGCM{}).CipherName() != noise.CipherAESGCM.CipherName() {
		t.Fatal("cipher names differ")
	}
	ad, pt := []byte("ad"), bytes.Repeat([]byte("plaintext"), 100)
	for _, n := range []uint64{0, 1, 255, 1 << 40, ^uint64(0) - 1} {
		a, b := ours.Encrypt(nil, n, ad, pt), theirs.Encrypt(nil, n, ad, pt)
		if !bytes.Equal(a, b) {
			t.Fatalf("nonce %d: ciphertexts differ", n)
		}
		got, err := ours.Decrypt(nil, n, ad, b)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("nonce %d: open: %v", n, err)
		}
		if _, err := ours.Decrypt(nil, n+1, ad, b); err == nil {
			t.Fatalf("nonce %d: opened with the wrong nonce", n)
		}
	}
}

func TestAESGCMSealsWithoutAllocating(t *testing.T) {
	var k [32]byte
	c := aesGCM{}.Cipher(k)
	pt := make([]byte, 1024)
	buf, dst := make([]byte, 0, len(pt)+16), make([]byte, 0, len(pt))
	if n := testing.AllocsPerRun(100, func() {
		ct := c.Encrypt(buf[:0], 7, nil, pt)
		if _, err := c.Decrypt(dst[:0], 7, nil, ct); err != nil {
			t.Fatal(err)
		}
	}); n > 0 {
		t.Fatalf("%v allocations per seal and open, want 0", n)
	}
}
