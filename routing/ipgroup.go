package routing

import (
	"net/netip"
	"strings"
)

// ipGroup is the IP diversity group of an address: its /24 (IPv4) or /64 (IPv6) prefix, or, for a host name, the
// lowercased name. The zero ipGroup stands for "exempt from the limits".
type ipGroup struct {
	prefix netip.Prefix
	host   string
}

// groupOf returns the IP group of addr, and false when addr is not a valid host:port (see VerifyRecord).
func (t *Table) groupOf(addr string) (ipGroup, bool) {
	host, ip, err := splitAddr(addr)
	if err != nil {
		return ipGroup{}, false
	}
	if !ip.IsValid() {
		return ipGroup{host: strings.ToLower(host)}, true
	}
	ip = ip.WithZone("").Unmap()
	if t.cfg.ExemptLoopback && ip.IsLoopback() {
		return ipGroup{}, true
	}
	plen := 64
	if ip.Is4() {
		plen = 24
	}
	pfx, _ := ip.Prefix(plen) // cannot fail: ip is valid, has no zone and plen fits its length
	return ipGroup{prefix: pfx}, true
}

// countGroup returns how many slots of s are in group g.
func countGroup(s []slot, g ipGroup) int {
	n := 0
	for i := range s {
		if s[i].g == g {
			n++
		}
	}
	return n
}

// fits reports whether one more entry of group g is allowed in bucket b and in the table.
func (t *Table) fits(b *bucket, g ipGroup) bool {
	if g == (ipGroup{}) {
		return true
	}
	if t.cfg.BucketIPLimit > 0 && countGroup(b.entries, g) >= t.cfg.BucketIPLimit {
		return false
	}
	return t.cfg.TableIPLimit == 0 || t.groups[g] < t.cfg.TableIPLimit
}

// addGroup adjusts the table-wide count of group g by delta.
func (t *Table) addGroup(g ipGroup, delta int) {
	if g == (ipGroup{}) {
		return
	}
	if n := t.groups[g] + delta; n > 0 {
		t.groups[g] = n
	} else {
		delete(t.groups, g)
	}
}
