package session

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
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

// TestNodeIDVerifyAgreesWithCryptoEd25519 checks that Verify (curve25519-voi) accepts exactly what crypto/ed25519
// accepts, on valid signatures and on the edge cases where ed25519 implementations are known to differ: a
// non-canonical S, small-order keys and signature points, keys that do not decode, and bit flips.
func TestNodeIDVerifyAgreesWithCryptoEd25519(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type tc struct {
		name          string
		key, msg, sig []byte
		want          bool
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
		cases = append(cases, tc{"valid", key, msg, sig, true})
		flipped := slices.Clone(sig)
		flipped[rng.IntN(len(flipped))] ^= 1 << rng.IntN(8)
		cases = append(cases, tc{"flipped signature bit", key, msg, flipped, false})
		if len(msg) > 0 {
			other := slices.Clone(msg)
			other[rng.IntN(len(other))] ^= 1 << rng.IntN(8)
			cases = append(cases, tc{"flipped message bit", key, other, sig, false})
		}
		cases = append(cases, tc{"non-canonical S (S + L)", key, msg, withSPlusOrder(sig), false})
		random := make([]byte, 32)
		for j := range random {
			random[j] = byte(rng.Uint32())
		}
		cases = append(cases, tc{"random key", random, msg, sig, false})
	}
	// The identity point as key, and as R with S = 0: crypto/ed25519 (cofactorless, no small-order checks) accepts
	// this signature of any message.
	identity := make([]byte, 32)
	identity[0] = 1
	weakSig := append(slices.Clone(identity), make([]byte, 32)...)
	cases = append(cases, tc{"small-order key and R", identity, []byte("any message"), weakSig, true})
	// A key whose y coordinate is not reduced (2^255 - 1 >= p), which crypto/ed25519 decodes.
	unreduced := bytes.Repeat([]byte{0xff}, 32)
	unreduced[31] = 0x7f
	cases = append(cases, tc{"non-canonical key", unreduced, []byte("m"), weakSig, false})

	for _, c := range cases {
		std := ed25519.Verify(c.key, c.msg, c.sig)
		var id NodeID
		copy(id[:], c.key)
		got := id.Verify(c.msg, c.sig)
		if got != std || got != c.want {
			t.Errorf("%s: Verify = %v, crypto/ed25519 = %v, want %v", c.name, got, std, c.want)
		}
	}
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
