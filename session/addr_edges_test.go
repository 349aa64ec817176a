package session

import (
	"errors"
	"strings"
	"testing"
)

// Host names take letters of both cases, every digit, '-', '.' and '_'; an IPv6 zone takes those too, up to
// maxZoneLength of them.
func TestParseHostPortTakesEveryHostCharacterAndTheLongestZone(t *testing.T) {
	for _, in := range []string{"Node_9.EXAMPLE-0:1", "[fe80::1%" + strings.Repeat("Z", maxZoneLength-3) + "_9-]:1"} {
		if got, err := ParseHostPort(in); err != nil || got != in {
			t.Errorf("ParseHostPort(%q) = %q, %v; want it unchanged", in, got, err)
		}
	}
	if _, err := ParseHostPort("[fe80::1%" + strings.Repeat("e", maxZoneLength+1) + "]:1"); !errors.Is(err, ErrBadPeerAddr) {
		t.Errorf("a zone of %d characters: %v, want ErrBadPeerAddr", maxZoneLength+1, err)
	}
}
