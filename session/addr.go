package session

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrBadPeerAddr is wrapped by the errors of ParsePeerAddr.
var ErrBadPeerAddr = errors.New("session: bad peer address")

// PeerAddr is a node's NodeID and a network address it listens on. Its one text form, used in flags, logs and
// the API, is "<64 hex id>@host:port", with IPv6 hosts in brackets: "<id>@[::1]:4001".
type PeerAddr struct {
	ID   NodeID
	Addr string // host:port
}

// ParsePeerAddr parses the text form of a PeerAddr. The id must be a non-zero NodeID, the host non-empty and the
// port in 1..65535. IP addresses are normalised (e.g. "[0:0::1]" becomes "[::1]"), so String gives the canonical form.
func ParsePeerAddr(s string) (PeerAddr, error) {
	idText, hostPort, ok := strings.Cut(s, "@")
	if !ok {
		return PeerAddr{}, fmt.Errorf("%w: %q: missing '@' between id and host:port", ErrBadPeerAddr, s)
	}
	id, err := ParseNodeID(idText)
	if err != nil {
		return PeerAddr{}, fmt.Errorf("%w: %q: bad id: %w", ErrBadPeerAddr, s, err)
	}
	if id.IsZero() {
		return PeerAddr{}, fmt.Errorf("%w: %q: id is zero", ErrBadPeerAddr, s)
	}
	addr, err := normalizeHostPort(hostPort)
	if err != nil {
		return PeerAddr{}, fmt.Errorf("%w: %q: %s", ErrBadPeerAddr, s, err)
	}
	return PeerAddr{ID: id, Addr: addr}, nil
}

// ParseHostPort checks a host:port as ParsePeerAddr checks the part after '@' (a host name or IP address, a port in
// 1..65535) and returns its canonical form; its errors wrap ErrBadPeerAddr.
func ParseHostPort(s string) (string, error) {
	addr, err := normalizeHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %s", ErrBadPeerAddr, s, err)
	}
	return addr, nil
}

// normalizeHostPort checks a host:port and returns its canonical form.
func normalizeHostPort(hostPort string) (string, error) {
	host, portText, err := net.SplitHostPort(hostPort)
	if err != nil {
		return "", fmt.Errorf("bad host:port: %w", err)
	}
	if host == "" {
		return "", errors.New("empty host")
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return "", fmt.Errorf("port %q out of range 1..65535", portText)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		// An IPv6 zone is an interface name: netip takes any bytes of any length there, newlines included, which
		// then went into logs and the admin API.
		if z := ip.Zone(); len(z) > maxZoneLength || !hostChars(z) {
			return "", fmt.Errorf("bad IPv6 zone %q: want an interface name of at most %d letters, digits, '-', '.' or '_'", z, maxZoneLength)
		}
		return netip.AddrPortFrom(ip, uint16(port)).String(), nil
	}
	if strings.HasPrefix(hostPort, "[") {
		return "", fmt.Errorf("bad host:port: %q in brackets is not an IPv6 address", host)
	}
	for _, r := range host {
		if !hostChar(r) {
			return "", fmt.Errorf("bad host %q: character %q not allowed in a host name", host, r)
		}
	}
	return net.JoinHostPort(host, strconv.FormatUint(port, 10)), nil
}

// maxZoneLength bounds an IPv6 zone (an interface name: 15 bytes on Linux).
const maxZoneLength = 32

// hostChar tells whether r may be in a host name or an IPv6 zone.
func hostChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_'
}

// hostChars tells whether every rune of s is a hostChar.
func hostChars(s string) bool {
	for _, r := range s {
		if !hostChar(r) {
			return false
		}
	}
	return true
}

// String returns the text form of a: "<id>@host:port".
func (a PeerAddr) String() string { return a.ID.String() + "@" + a.Addr }

// MarshalText implements encoding.TextMarshaler with the String form.
func (a PeerAddr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts what ParsePeerAddr accepts.
func (a *PeerAddr) UnmarshalText(b []byte) error {
	p, err := ParsePeerAddr(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}
