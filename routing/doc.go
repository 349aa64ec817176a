// Package routing is the functional core of Kademlia peer discovery: signed node records (NewRecord, VerifyRecord,
// RecordBook), the routing table (Table: 256-bit keys, XOR distance, k-buckets with replacement caches,
// least-recently-seen eviction after a failed liveness check, IP diversity limits) and the iterative lookup as a pure
// state machine (Lookup).
//
// Nothing here starts goroutines, reads the clock or draws from a global random source: callers pass the current
// time and a *rand.Rand, which keeps every type deterministic and directly testable. None of the types is safe for
// concurrent use; the routing actor owns them.
package routing
