package actors

import "testing"

// A node on a private network exempts private addresses from its table's IP limits (a fleet there shares a /24,
// of which each table kept 10 nodes); a node on a public address, or on loopback, keeps them.
func TestANodeOnAPrivateNetworkExemptsItFromTheTablesIPLimits(t *testing.T) {
	for _, c := range []struct {
		advertise string
		want      bool
	}{
		{"10.1.2.3:30700", true},
		{"172.17.0.5:30700", true},
		{"[fd12::5]:30700", true},
		{"203.0.113.5:30700", false},
		{"127.0.0.1:30700", false},
		{"node.example.com:30700", false},
		{"", false},
	} {
		n, err := NewNode(DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		n.advertise = c.advertise
		if got := n.routingConfig().Table.ExemptPrivate; got != c.want {
			t.Errorf("advertising %q: ExemptPrivate = %v, want %v", c.advertise, got, c.want)
		}
	}
}
