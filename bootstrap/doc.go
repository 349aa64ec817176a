// Package bootstrap joins a node to its network and keeps it there. The bootstrapper is an actor of the node's
// supervision tree (actors spawns it unless Config.DisableDiscovery is set); an embedder configures it through
// actors.Config.Bootstrap:
//
//   - Bootnodes: the nodes to join through (<id>@host:port, session.ParsePeerAddr). The bootstrapper connects to
//     them, looks its own key up through them to fill the routing table, and is joined once one answered.
//   - TargetOutbound: the outbound connections it keeps, dialed from the routing table and topped up every
//     Interval; a candidate that failed is retried after a growing delay (DialBackoffBase to DialBackoffMax).
//   - RefreshInterval: how often the table is refreshed by lookups once it has settled (sooner while it is young).
//   - StorePath (or the node's DataDir): the peer store, whose records let a restarted node rejoin without its
//     bootnodes.
//
// The step logic runs in goroutines the actor owns, so that its Receive never blocks; Config.Validate checks the
// settings and DefaultConfig documents the defaults.
package bootstrap
