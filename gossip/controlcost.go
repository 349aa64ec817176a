package gossip

import "github.com/actormesh/actormesh/messages"

// controlItemsPerUnit is the number of IWANT ids or tree cuts that cost a unit of a peer's control budget
// (RelayConfig.PeerControlRate): the relay spends 30-40 ns on each, about a microsecond on a unit's worth
// (BenchmarkControlFlood). An IHAVE id costs more, up to ~115 ns (the seen and wanted lookups, a want made), so
// ihaveIDsPerUnit of them cost a unit: at 32, one peer's IHAVEs of 64 topics x 440 ids held the relay 7.5 ms a
// second once every IHAVE of an RPC was read (stop 58), against 1-5 ms for the other kinds.
const (
	controlItemsPerUnit = 32
	ihaveIDsPerUnit     = 8
)

// beaconCheckCost is what a root's beacon signature check (Config.TreeVerify) costs the control budget of the peer
// whose tree report called for it, on top of the report's unit: an ed25519 check takes the relay 25-45 µs
// (BenchmarkNodeIDVerify). Only the checks done are charged (Router.HandleControlPaid): most reports of an honest
// peer need none (the beacon is not newer by beaconCheckGap; node sim reads ~0.1 checks per delivery), and one
// that reports in 64 topics to a tree link, every other heartbeat with a newer beacon in each, spends ~1000 units
// a second on them. Charged the report's unit only, a peer signing made-up beacons (roots of its own, each signed
// once a heartbeat) had maxBeaconChecksPerBeat checks done per topic a heartbeat: ~13-18 ms a second in 64
// topics, ~2 ms at this price (BenchmarkControlFlood, tree-signed).
const beaconCheckCost = 32

// beaconCheckFunds returns what of a peer's control budget, holding tokens of its burst, the beacon checks its
// tree reports call for may spend: what it holds past a quarter of its burst (1000 units by default), kept for its
// control. Checks paid down to nothing would have an honest peer's next control refused, and an honest peer's RPC
// costs less than a tenth of the burst (TestSimulationHonestControlFitsThePeerControlBudget); three quarters pay
// for the 64 checks an honest peer's report in 64 topics may call for at once (2048 units): with half, 7 of them
// waited at every report of an honest root in 64 topics.
func beaconCheckFunds(tokens float64, burst int) float64 {
	return tokens - float64(burst)/4
}

// minPeerControlBurst is the least RelayConfig.PeerControlBurst: past the quarter kept (beaconCheckFunds), a full
// budget pays for a beacon check. With less, no root's beacon would ever be taken from a report.
const minPeerControlBurst = 2 * beaconCheckCost

// controlCost returns what rpc's hello, subscriptions and control cost its sender's control budget: 1 for the RPC,
// 1 for each of its first 3*maxTopics subscriptions and each topic entry of its control (IHAVE, GRAFT, PRUNE, tree
// report), 1 for each ihaveIDsPerUnit IHAVE ids and for each controlItemsPerUnit IWANT ids, tree cuts and
// subscriptions past the first 3*maxTopics (a lookup each), each counted only as far as
// the relay reads them (handleSubscriptions, controlFromWire); 0 when rpc carries none of them. A unit is about a
// microsecond of the relay's work whatever the kind, so that one unit cannot buy a maximal RPC (one of 28 000 IHAVE
// ids cost 0.9 ms while ten IHAVEs a heartbeat were read, 3.2 ms once all of an RPC's were).
func controlCost(rpc *messages.GossipRPC, maxIDs, maxTopics int) float64 {
	c := rpc.Control
	if !rpc.Hello && len(rpc.Subscriptions) == 0 && c == nil {
		return 0
	}
	// Past its first 2*maxTopics subscriptions, the relay looks each up among the joined topics and reads up to
	// maxTopics of those (readSubscriptions): the next maxTopics cost as entries, the others as IWANT ids.
	rest := max(0, len(rpc.Subscriptions)-2*maxTopics)
	entries, items := min(len(rpc.Subscriptions), 2*maxTopics)+min(rest, maxTopics), rest-min(rest, maxTopics)
	if c != nil {
		ihave, tree := c.Ihave[:min(len(c.Ihave), maxTopics)], c.Tree[:min(len(c.Tree), maxTopics)]
		entries += len(ihave) + min(len(c.Graft), maxTopics) + min(len(c.Prune), maxTopics) + len(tree)
		ihaveIDs := 0
		for _, ih := range ihave {
			ihaveIDs += min(len(ih.Ids), maxIDs)
		}
		items += ihaveIDs * controlItemsPerUnit / ihaveIDsPerUnit // weighed as that many of the others
		for _, t := range tree {
			items += min(len(t.Cuts), maxTreeCuts) // a report of more is dropped unread (controlFromWire)
		}
		items += min(len(c.Iwant), maxIDs)
	}
	return 1 + float64(entries) + float64(items)/controlItemsPerUnit
}
