package session

import (
	"bytes"
	"encoding/json"
	"errors"
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
