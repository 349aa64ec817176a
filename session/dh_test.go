package session

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
)

// TestX25519DHAgreesWithCryptoECDH: keys and shared secrets are those of crypto/ecdh, so the handshake
// interoperates with any Noise_XX_25519 peer; a low-order public key is refused.
func TestX25519DHAgreesWithCryptoECDH(t *testing.T) {
	var dh x25519DH
	for range 20 {
		ours, err := dh.GenerateKeypair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		std, err := ecdh.X25519().NewPrivateKey(ours.Private)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(std.PublicKey().Bytes(), ours.Public) {
			t.Fatalf("public key %x, crypto/ecdh computes %x", ours.Public, std.PublicKey().Bytes())
		}
		peer, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		secret, err := dh.DH(ours.Private, peer.PublicKey().Bytes())
		if err != nil {
			t.Fatal(err)
		}
		want, err := peer.ECDH(std.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(secret, want) {
			t.Fatalf("shared secret %x, crypto/ecdh computes %x", secret, want)
		}
	}
	ours, _ := dh.GenerateKeypair(rand.Reader)
	if _, err := dh.DH(ours.Private, make([]byte, 32)); err == nil {
		t.Fatal("DH with the all-zero (low-order) public key succeeded")
	}
	if _, err := dh.DH(ours.Private, make([]byte, 31)); err == nil {
		t.Fatal("DH with a 31-byte public key succeeded")
	}
}
