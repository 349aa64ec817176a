package routing

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"

	"github.com/actormesh/actormesh/session"
)

// Key is a point of the 256-bit Kademlia key space. A node's key is the SHA-256 of its NodeID (see KeyOf).
type Key [32]byte

// KeyOf returns the Kademlia key of a node: SHA-256(id).
func KeyOf(id session.NodeID) Key { return Key(sha256.Sum256(id[:])) }

// KeyFromBytes returns the Key held in b, which must be exactly 32 bytes long (e.g. FindNode.Target).
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != len(k) {
		return Key{}, fmt.Errorf("%w: want %d bytes, got %d", ErrBadKey, len(k), len(b))
	}
	copy(k[:], b)
	return k, nil
}

// String returns k as 64 lowercase hex characters.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Distance returns the XOR distance of a and b, read as a 256-bit big-endian number.
func Distance(a, b Key) Key {
	var d Key
	for i := range d {
		d[i] = a[i] ^ b[i]
	}
	return d
}

// LogDistance returns the bit length of the XOR distance of a and b: 0 when they are equal, otherwise 1..256
// (256 when they differ in the first bit).
func LogDistance(a, b Key) int {
	for i := 0; i < len(a); i += 8 {
		if x := binary.BigEndian.Uint64(a[i:]) ^ binary.BigEndian.Uint64(b[i:]); x != 0 {
			return (len(a)-i)*8 - bits.LeadingZeros64(x)
		}
	}
	return 0
}

// DistCmp compares the distances of a and b to target: it returns -1 when a is closer, +1 when b is closer and 0
// when a == b.
func DistCmp(target, a, b Key) int {
	for i := 0; i < len(target); i += 8 {
		t := binary.BigEndian.Uint64(target[i:])
		da, db := binary.BigEndian.Uint64(a[i:])^t, binary.BigEndian.Uint64(b[i:])^t
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}
