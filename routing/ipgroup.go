package routing

import (
	"net/netip"
	"strings"
)

// ipGroup is the IP diversity group of an address: its /24 (IPv4) or /64 (IPv6) prefix, or, for a host name, its
// domain (domainOf). The zero ipGroup stands for "exempt from the limits".
type ipGroup struct {
	prefix netip.Prefix
	host   string
}

// groupOf returns the IP group of addr, and false when addr is not a valid host:port (see VerifyRecord).
func (t *Table) groupOf(addr string) (ipGroup, bool) {
	host, ip, err := splitAddr(addr)
	if err != nil || ip.IsValid() && !isUnicast(ip) {
		return ipGroup{}, false
	}
	if !ip.IsValid() {
		return ipGroup{host: domainOf(host)}, true
	}
	ip = ip.WithZone("").Unmap()
	if t.cfg.ExemptLoopback && ip.IsLoopback() || t.cfg.ExemptPrivate && scopeOf(ip) == scopePrivate {
		return ipGroup{}, true
	}
	plen := 64
	if ip.Is4() {
		plen = 24
	}
	pfx, _ := ip.Prefix(plen) // cannot fail: ip is valid, has no zone and plen fits its length
	return ipGroup{prefix: pfx}, true
}

// domainOf returns the domain a host name is registered under, lowercased: its last two labels, or three under a
// country's second-level domains such as co.uk or com.au (an approximation of the public suffix list). Names are
// grouped by it because one owner names any number of hosts under its domain, all of which may resolve to one
// machine: grouping by the full name let one host under 40 names (wildcard DNS such as n1.203.0.113.7.nip.io) take
// 40 entries, past the per-/24 limits.
func domainOf(host string) string {
	labels := strings.Split(strings.TrimSuffix(strings.ToLower(host), "."), ".")
	n := 2
	if k := len(labels); k >= 3 && len(labels[k-1]) == 2 && isSecondLevel(labels[k-2]) {
		n = 3
	}
	if len(labels) > n {
		labels = labels[len(labels)-n:]
	}
	return strings.Join(labels, ".")
}

// isSecondLevel tells whether label is one under which countries' registries give out domains (co.uk, com.au).
func isSecondLevel(label string) bool {
	switch label {
	case "co", "com", "net", "org", "gov", "edu", "ac", "or", "ne", "go":
		return true
	}
	return false
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
