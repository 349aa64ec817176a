package session

import (
	"github.com/flynn/noise"
)

// Bounds of HandshakeConfig.RekeyInterval, in transport frames per key.
//
// A frame carries at most 65535 bytes of ciphertext, 4096 AES blocks, so DefaultRekeyInterval frames are at most
// 2^32 blocks (64 GiB) under one key, and MaxRekeyInterval frames at most 2^34: TLS 1.3 (RFC 8446, section 5.5)
// bounds AES-GCM at 2^24.5 full records of 2^14 bytes, 2^34.5 blocks, which keeps an attacker's advantage against
// confidentiality under 2^-57. Since a frame's size is bounded, the frame count bounds the bytes too, and no bound
// on bytes is needed. A rekey costs each end one AES-GCM seal and a new key schedule (about 1 µs and 1.4 KB,
// BenchmarkConnRekey), which MinRekeyInterval frames make negligible: a peer advertising a tiny interval would
// have the node rekey at every frame.
const (
	DefaultRekeyInterval = 1 << 20
	MinRekeyInterval     = 1 << 10
	MaxRekeyInterval     = 1 << 22
)

// rekeyInterval is the interval both ends of a connection apply to both directions: the smaller of the two
// advertised, so 0 (no rekeying) when the peer advertised none, as a build older than rekeying does.
func rekeyInterval(local, peer uint64) uint64 { return min(local, peer) }

// transportCipher is one direction's Noise cipher state, rekeyed after every interval frames with Noise's REKEY
// (the Noise spec, sections 4.2 and 11.3: the new key is the first 32 bytes of the encryption of 32 zero bytes
// under the old key, with the reserved nonce 2^64-1 and no associated data). The sender and the receiver of the
// direction count the same frames, so they rekey at the same frame without a message. The nonce goes on counting
// across rekeys, so its exhaustion (noise.ErrMaxNonce, after 2^64-1 frames) is still an error, never a wrap.
type transportCipher struct {
	cs       *noise.CipherState
	interval uint64 // frames per key; 0 never rekeys
	left     uint64 // frames the current key still seals or opens
	rekeys   uint64 // rekeys done
}

// newTransportCipher returns the cipher of a direction keyed by cs that rekeys every interval frames (0: never).
func newTransportCipher(cs *noise.CipherState, interval uint64) transportCipher {
	return transportCipher{cs: cs, interval: interval, left: interval}
}

// encrypt seals plaintext as the next frame, appending it to out.
func (t *transportCipher) encrypt(out, plaintext []byte) ([]byte, error) {
	ct, err := t.cs.Encrypt(out, nil, plaintext)
	if err != nil {
		return nil, err
	}
	t.frameDone()
	return ct, nil
}

// decrypt opens the next frame, appending its plaintext to out.
func (t *transportCipher) decrypt(out, ciphertext []byte) ([]byte, error) {
	pt, err := t.cs.Decrypt(out, nil, ciphertext)
	if err != nil {
		return nil, err
	}
	t.frameDone()
	return pt, nil
}

// frameDone counts a frame sealed or opened and rekeys after the interval's last.
func (t *transportCipher) frameDone() {
	if t.interval == 0 {
		return
	}
	if t.left--; t.left == 0 {
		t.cs.Rekey()
		t.left = t.interval
		t.rekeys++
	}
}

// freshKey reports whether the cipher has rekeyed and opened or sealed nothing under its new key yet: a frame that
// fails to open then is most likely one the peer sealed under the old key, not having rekeyed.
func (t *transportCipher) freshKey() bool { return t.rekeys > 0 && t.left == t.interval }
