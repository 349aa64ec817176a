// Package gossip is the functional core of topic broadcast: a per-node Router that decides, for every event it is
// given, which messages and control records to send to which peers, what to deliver locally and whom to penalise.
//
// The Router starts no goroutines, reads no clock, does no I/O and draws randomness only from the *rand.Rand it was
// built with. The relay actor (the shell) feeds it peer and subscription changes, inbound messages and control,
// validation verdicts and a heartbeat every Config.HeartbeatInterval, and performs the returned Output. A Router is
// not safe for concurrent use; the actor owns it.
//
// # Dissemination: eager push, lazy pull
//
// For each subscribed topic a node keeps a mesh of about D peers (between Dlo and Dhi, maintained by GRAFT and
// PRUNE on each heartbeat, with a PruneBackoff before a pruned peer may graft again). Every mesh link is either
// eager, carrying full messages, or lazy, carrying only ids: a heartbeat announces recently received ids (IHAVE) to
// the lazy mesh links and to Dlazy random topic peers outside the mesh, skipping peers known to hold the message,
// and a node that misses an announced message pulls it (IWANT), asking the next announcer when an answer does not
// come within IWantTimeout. While nobody around a node repairs (it neither answered an IWANT nor pulled a message
// for HistoryLength heartbeats), its mesh links may hear IHAVE only every MeshGossipBeats-th heartbeat, taking turns.
//
// The eager links are trimmed to a spanning tree as in Plumtree (Leitão, Pereira, Rodrigues, 2007): an eager link
// that keeps pushing duplicates (PruneDuplicates in a row) is turned lazy on both ends by a PRUNE with Lazy set,
// which keeps it in the mesh, so the degree does not drop; a message first obtained by IWANT grafts the link it came
// from back to eager, once validation accepted it (a copy rejected or ignored grafts nothing). Once the tree has formed, every node receives each message about once, while the lazy links
// detect and repair the holes that failures leave. Plumtree prunes on the first duplicate; waiting for a few in a
// row keeps concurrent messages from different origins from pruning the tree apart (see PruneDuplicates).
// GossipDelay holds an id back from IHAVE until the tree has probably delivered it everywhere, so that slow tree
// paths are not taken for holes.
//
// # The broadcast tree
//
// With Config.Tree (the relay's default), the nodes instead agree on one spanning tree per topic by telling their
// peers their place in it (TreeInfo reports): the root is the best-ranked node, each node's parent is its peer
// nearest the root, and a message goes along the tree links, and, while the tree changes root, to the peers of the
// other tree (crossLinks). A root whose beacon stops or whose routes are all cut is given up. A node that has to
// pull most messages, from several peers, leaves its parent first, and gives the root up if that does not help (or
// the parent is the root, or others have left the root already): one of them withholds messages
// (treedistrust.go). The mesh and IHAVE/IWANT still repair what the tree misses.
//
// # Validation
//
// HandleMessage records a new message as seen and holds it until the shell reports a Verdict through Validated: only
// an accepted message is delivered, cached for IWANT and relayed; a rejected one yields a Penalty for the peer that
// sent it; an ignored one (or one whose verdict does not come within ValidationTimeout) is dropped. The id of a
// message rejected or ignored is forgotten, so that another copy (with content ids, the genuine one of a payload a
// hostile peer signed as its own) is validated afresh: a copy that came meanwhile is asked for from its sender.
// Before all that, a message whose OriginTime is outside the freshness window (more than MaxClockSkew ahead, or
// older than SeenTTL - MaxClockSkew) is dropped, so that a replay is not taken after its id was forgotten.
//
// # Bounds
//
// Every structure has a maximum set by Config: the seen-cache (SeenMax ids, each kept SeenTTL), the message cache
// (HistoryLength heartbeats, CacheMaxMessages, CacheMaxBytes), messages awaiting a verdict (MaxPendingValidation,
// MaxPendingValidationPerPeer of them from one peer, their bytes MaxPendingValidationBytes and
// MaxPendingValidationBytesPerPeer, ValidationTimeout), outstanding IWANTs (MaxPendingIWant, MaxPendingIWantPerPeer of them announced first by one peer, three
// announcers each), peers (MaxPeers) and their
// subscriptions (MaxPeerTopics), hence the topics known; the mesh is trimmed to D when it exceeds Dhi. Per peer and
// heartbeat, at most MaxIHaveMessages IHAVE messages are read and MaxIWantReplies messages (MaxIWantReplyBytes bytes) are
// served, and no IHAVE or IWANT carries more than MaxIHaveLength ids.
package gossip
