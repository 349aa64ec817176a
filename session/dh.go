package session

import (
	"crypto/ecdh"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/flynn/noise"
)

// x25519DH is a noise.DHFunc on crypto/ecdh that does one X25519 scalar multiplication per operation.
//
// noise.DH25519 goes through golang.org/x/crypto/curve25519, which now wraps crypto/ecdh: there every DH call
// builds an ecdh.PrivateKey from the raw scalar, and building one computes its public key (a full scalar
// multiplication), so each DH costs two multiplications and GenerateKeypair costs two. x25519DH keeps the
// ecdh.PrivateKey of the keys it knows (the identity's static key and the ephemeral keys it generated), so a
// handshake costs one multiplication per key pair and per DH. A value serves one handshake: it is not safe for
// concurrent use.
type x25519DH struct {
	keys []knownKey
}

type knownKey struct {
	raw []byte
	key *ecdh.PrivateKey
}

var _ noise.DHFunc = (*x25519DH)(nil)

// newX25519DH returns a DH function that knows the given key pairs already.
func newX25519DH(keys ...*ecdh.PrivateKey) *x25519DH {
	d := &x25519DH{keys: make([]knownKey, 0, len(keys)+1)}
	for _, k := range keys {
		d.keys = append(d.keys, knownKey{raw: k.Bytes(), key: k})
	}
	return d
}

// GenerateKeypair implements noise.DHFunc.
func (d *x25519DH) GenerateKeypair(rng io.Reader) (noise.DHKey, error) {
	var raw [32]byte
	if _, err := io.ReadFull(rng, raw[:]); err != nil {
		return noise.DHKey{}, fmt.Errorf("session: x25519 key: %w", err)
	}
	k, err := ecdh.X25519().NewPrivateKey(raw[:])
	if err != nil {
		return noise.DHKey{}, fmt.Errorf("session: x25519 key: %w", err)
	}
	kk := knownKey{raw: k.Bytes(), key: k}
	d.keys = append(d.keys, kk)
	return noise.DHKey{Private: kk.raw, Public: k.PublicKey().Bytes()}, nil
}

// DH implements noise.DHFunc. It fails for a low-order public key (an all-zero shared secret).
func (d *x25519DH) DH(privkey, pubkey []byte) ([]byte, error) {
	var priv *ecdh.PrivateKey
	for _, k := range d.keys {
		if subtle.ConstantTimeCompare(k.raw, privkey) == 1 {
			priv = k.key
			break
		}
	}
	if priv == nil {
		var err error
		if priv, err = ecdh.X25519().NewPrivateKey(privkey); err != nil {
			return nil, fmt.Errorf("session: x25519: %w", err)
		}
	}
	pub, err := ecdh.X25519().NewPublicKey(pubkey)
	if err != nil {
		return nil, fmt.Errorf("session: x25519: %w", err)
	}
	secret, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("session: x25519: %w", err)
	}
	return secret, nil
}

// DHLen implements noise.DHFunc.
func (*x25519DH) DHLen() int { return 32 }

// DHName implements noise.DHFunc; the name is the standard one, so the handshake interoperates with any
// Noise_XX_25519 implementation.
func (*x25519DH) DHName() string { return "25519" }
