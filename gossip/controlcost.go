package gossip

import "github.com/actormesh/actormesh/messages"

// controlItemsPerUnit is the number of message ids (IHAVE, IWANT) or tree cuts that cost a unit of a peer's
// control budget (RelayConfig.PeerControlRate): the relay spends 30-40 ns on each id, about a microsecond on a
// unit's worth (BenchmarkControlFlood).
const controlItemsPerUnit = 32

// controlCost returns what rpc's hello, subscriptions and control cost its sender's control budget: 1 for the RPC,
// 1 for each subscription and each topic entry of its control (IHAVE, GRAFT, PRUNE, tree report), and 1 for each
// controlItemsPerUnit message ids and tree cuts, each counted only as far as the relay reads them
// (handleSubscriptions, controlFromWire); 0 when rpc carries none of them. A unit is about a microsecond of the
// relay's work whatever the kind, so that one unit cannot buy a maximal RPC (one of 28 000 IHAVE ids cost 0.9 ms).
func controlCost(rpc *messages.GossipRPC, maxIDs, maxTopics int) float64 {
	c := rpc.Control
	if !rpc.Hello && len(rpc.Subscriptions) == 0 && c == nil {
		return 0
	}
	entries, items := min(len(rpc.Subscriptions), 2*maxTopics), 0
	if c != nil {
		ihave, tree := c.Ihave[:min(len(c.Ihave), maxTopics)], c.Tree[:min(len(c.Tree), maxTopics)]
		entries += len(ihave) + min(len(c.Graft), maxTopics) + min(len(c.Prune), maxTopics) + len(tree)
		for _, ih := range ihave {
			items += min(len(ih.Ids), maxIDs)
		}
		for _, t := range tree {
			items += min(len(t.Cuts), maxTreeCuts) // a report of more is dropped unread (controlFromWire)
		}
		items += min(len(c.Iwant), maxIDs)
	}
	return 1 + float64(entries) + float64(items)/controlItemsPerUnit
}
