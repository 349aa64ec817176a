package session

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

func TestNodeIDRoundTrip(t *testing.T) {
	id := testIdentity(t, 1).NodeID()
	s := id.String()
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String() = %q, want 64 lowercase hex characters", s)
	}
	if got := id.Short(); got != s[:10] {
		t.Fatalf("Short() = %q, want %q", got, s[:10])
	}
	parsed, err := ParseNodeID(s)
	if err != nil || parsed != id {
		t.Fatalf("ParseNodeID(String()) = %v, %v; want %v", parsed, err, id)
	}
	fromBytes, err := NodeIDFromBytes(id.Bytes())
	if err != nil || fromBytes != id {
		t.Fatalf("NodeIDFromBytes(Bytes()) = %v, %v; want %v", fromBytes, err, id)
	}
	b := id.Bytes()
	b[0] ^= 0xff
	if id.Bytes()[0] == b[0] {
		t.Fatal("Bytes() does not return a copy")
	}

	js, err := json.Marshal(map[string]NodeID{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"` + s + `"}`; string(js) != want {
		t.Fatalf("json = %s, want %s", js, want)
	}
	var back map[string]NodeID
	if err := json.Unmarshal(js, &back); err != nil || back["id"] != id {
		t.Fatalf("json round trip = %v, %v", back, err)
	}
	if id.IsZero() || !(NodeID{}).IsZero() {
		t.Fatal("IsZero is wrong")
	}
}

func TestNodeIDVerify(t *testing.T) {
	ident := testIdentity(t, 2)
	msg := []byte("hello")
	sig := ident.Sign(msg)
	if !ident.NodeID().Verify(msg, sig) {
		t.Fatal("valid signature rejected")
	}
	if ident.NodeID().Verify([]byte("hellO"), sig) {
		t.Fatal("signature of another message accepted")
	}
	if testIdentity(t, 3).NodeID().Verify(msg, sig) {
		t.Fatal("signature checked against another key accepted")
	}
	if ident.NodeID().Verify(msg, sig[:10]) {
		t.Fatal("truncated signature accepted")
	}
}

// TestNodeIDVerifyRules checks Verify's acceptance rules (ZIP-215's, without small-order keys): on what correct
// signers make, and on the usual corruptions, it agrees with crypto/ed25519; it differs on the crafted signatures
// the rules are about, each case of which fails if Verify went back to the standard library's rules.
func TestNodeIDVerifyRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type tc struct {
		name          string
		key, msg, sig []byte
		want, std     bool // Verify's answer, crypto/ed25519's
	}
	var cases []tc
	for i := range 20 {
		ident := testIdentity(t, byte(10+i))
		msg := make([]byte, rng.IntN(1200))
		for j := range msg {
			msg[j] = byte(rng.Uint32())
		}
		sig := ident.Sign(msg)
		key := ident.NodeID().Bytes()
		cases = append(cases, tc{"valid", key, msg, sig, true, true})
		flipped := slices.Clone(sig)
		flipped[rng.IntN(len(flipped))] ^= 1 << rng.IntN(8)
		cases = append(cases, tc{"flipped signature bit", key, msg, flipped, false, false})
		if len(msg) > 0 {
			other := slices.Clone(msg)
			other[rng.IntN(len(other))] ^= 1 << rng.IntN(8)
			cases = append(cases, tc{"flipped message bit", key, other, sig, false, false})
		}
		cases = append(cases, tc{"non-canonical S (S + L)", key, msg, withSPlusOrder(sig), false, false})
		random := make([]byte, 32)
		for j := range random {
			random[j] = byte(rng.Uint32())
		}
		cases = append(cases, tc{"random key", random, msg, sig, false, false})
		// R off the prime-order subgroup by a point of order 4: only the cofactored equation holds.
		cases = append(cases, tc{"cofactored only", key, msg, cofactoredOnlySignature(t, ident, msg), true, false})
	}
	// The identity point as key, and as R with S = 0: a signature of any message under both equations. The
	// standard library accepts it; a small-order key is refused here.
	identity := make([]byte, 32)
	identity[0] = 1
	weakSig := append(slices.Clone(identity), make([]byte, 32)...)
	cases = append(cases, tc{"small-order key and R", identity, []byte("any message"), weakSig, false, true})
	// A key whose y coordinate is not reduced (2^255 - 1 >= p), which both decode.
	unreduced := bytes.Repeat([]byte{0xff}, 32)
	unreduced[31] = 0x7f
	cases = append(cases, tc{"non-canonical key", unreduced, []byte("m"), weakSig, false, false})

	for _, c := range cases {
		var id NodeID
		copy(id[:], c.key)
		if got, std := id.Verify(c.msg, c.sig), ed25519.Verify(c.key, c.msg, c.sig); got != c.want || std != c.std {
			t.Errorf("%s: Verify = %v (want %v), crypto/ed25519 = %v (want %v)", c.name, got, c.want, std, c.std)
		}
	}
}

// cofactoredOnlySignature signs msg with ident's key as ed25519 does, but with R = [r]B + T, T of order 4: then
// [S]B - [k]A = [r]B is not R (the standard library's cofactorless equation fails) while [8]([S]B - [k]A - R) is
// the identity (the cofactored equation holds).
func cofactoredOnlySignature(tb testing.TB, ident *Identity, msg []byte) []byte {
	tb.Helper()
	return torsionSignature(tb, ident, msg, true)
}

// torsionSignature is cofactoredOnlySignature; without withNonce, r is 0 and R is the point of order 4 itself.
func torsionSignature(tb testing.TB, ident *Identity, msg []byte, withNonce bool) []byte {
	tb.Helper()
	h := sha512.Sum512(ident.priv.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a, err := scalar.NewFromBytesModOrder(h[:32])
	if err != nil {
		tb.Fatal(err)
	}
	nonce := sha512.Sum512(append(h[32:], msg...))
	r, err := scalar.NewFromBytesModOrderWide(nonce[:])
	if err != nil {
		tb.Fatal(err)
	}
	if !withNonce {
		r = scalar.New()
	}
	var order4 curve.CompressedEdwardsY // y = 0: (sqrt(-1), 0), a point of order 4
	var torsion, rb, rPoint curve.EdwardsPoint
	if _, err := torsion.SetCompressedY(&order4); err != nil {
		tb.Fatal(err)
	}
	rPoint.Add(rb.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r), &torsion)
	var rEnc curve.CompressedEdwardsY
	rEnc.SetEdwardsPoint(&rPoint)
	d := sha512.New()
	d.Write(rEnc[:])
	d.Write(ident.NodeID().Bytes())
	d.Write(msg)
	k, err := scalar.NewFromBytesModOrderWide(d.Sum(nil))
	if err != nil {
		tb.Fatal(err)
	}
	var s scalar.Scalar
	s.Add(r, s.Mul(k, a))
	sig := append([]byte(nil), rEnc[:]...)
	sb := make([]byte, 32)
	if err := s.ToBytes(sb); err != nil {
		tb.Fatal(err)
	}
	return append(sig, sb...)
}

// withSPlusOrder returns sig with its scalar S replaced by S + L (L the group order): the same point, a
// non-canonical encoding that must be rejected (it still fits 256 bits for every S < L).
func withSPlusOrder(sig []byte) []byte {
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	le := slices.Clone(sig[32:])
	slices.Reverse(le)
	s := new(big.Int).SetBytes(le)
	s.Add(s, l)
	be := s.FillBytes(make([]byte, 32))
	slices.Reverse(be)
	return append(slices.Clone(sig[:32]), be...)
}

func BenchmarkNodeIDVerify(b *testing.B) {
	ident, err := GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 1100)
	sig := ident.Sign(msg)
	id := ident.NodeID()
	b.Run("voi", func(b *testing.B) {
		for b.Loop() {
			if !id.Verify(msg, sig) {
				b.Fatal("rejected")
			}
		}
	})
	b.Run("crypto-ed25519", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(id[:], msg, sig) {
				b.Fatal("rejected")
			}
		}
	})
}

func TestParseNodeIDErrors(t *testing.T) {
	valid := testIdentity(t, 1).NodeID().String()
	for _, tc := range []struct {
		name, in, wantMsg string
	}{
		{"empty", "", "got 0"},
		{"short", valid[:63], "got 63"},
		{"long", valid + "0", "got 65"},
		{"uppercase", strings.ToUpper(valid[:2]) + valid[2:], "lowercase hex"},
		{"not hex", "zz" + valid[2:], "lowercase hex"},
		{"0x prefix", "0x" + valid[2:], "lowercase hex"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNodeID(tc.in)
			if !errors.Is(err, ErrBadNodeID) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("ParseNodeID(%q) error = %v, want ErrBadNodeID mentioning %q", tc.in, err, tc.wantMsg)
			}
		})
	}
	if _, err := NodeIDFromBytes(bytes.Repeat([]byte{1}, 31)); !errors.Is(err, ErrBadNodeID) {
		t.Fatalf("NodeIDFromBytes(31 bytes) error = %v, want ErrBadNodeID", err)
	}
	var n NodeID
	if err := n.UnmarshalText([]byte("nope")); !errors.Is(err, ErrBadNodeID) {
		t.Fatalf("UnmarshalText error = %v, want ErrBadNodeID", err)
	}
}

// NodeIDFromBytes takes exactly 32 bytes: a longer key is refused, not cut (a handshake payload or a record whose
// key carries a byte more named the node of its first 32).
func TestNodeIDFromBytesRefusesALongerKey(t *testing.T) {
	key := testIdentity(t, 1).NodeID().Bytes()
	if _, err := NodeIDFromBytes(append(key, 0)); !errors.Is(err, ErrBadNodeID) {
		t.Fatalf("NodeIDFromBytes(33 bytes) error = %v, want ErrBadNodeID", err)
	}
	if id, err := NodeIDFromBytes(key); err != nil || !bytes.Equal(id[:], key) {
		t.Fatalf("NodeIDFromBytes(32 bytes) = %v, %v", id, err)
	}
}

// Verify takes a signature whose R is a point of small order (ZIP-215 allows it; the cofactored equation holds for
// R = T of order 4 and S = k*a): every node of a network must accept it alike, so the rule is pinned.
func TestNodeIDVerifyAcceptsASmallOrderR(t *testing.T) {
	ident := testIdentity(t, 1)
	msg := []byte("small-order R")
	sig := torsionSignature(t, ident, msg, false)
	if !bytes.Equal(sig[:32], make([]byte, 32)) {
		t.Fatalf("R = %x, want the order-4 point (y = 0)", sig[:32])
	}
	if !ident.NodeID().Verify(msg, sig) {
		t.Fatal("a signature with a small-order R refused (ZIP-215 accepts it)")
	}
	if ident.NodeID().Verify([]byte("another message"), sig) {
		t.Fatal("the small-order-R signature verifies another message")
	}
}
