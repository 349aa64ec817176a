package routing

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/actormesh/actormesh/session"
)

// t0 is the start of every test clock.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// newRand returns a deterministic random source.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

// randID returns a random NodeID.
func randID(rng *rand.Rand) session.NodeID {
	var id session.NodeID
	for i := 0; i < len(id); i += 8 {
		binary.LittleEndian.PutUint64(id[i:], rng.Uint64())
	}
	return id
}

// randKey returns a random Key.
func randKey(rng *rand.Rand) Key { return Key(randID(rng)) }

// randAddr returns a random public-looking IPv4 host:port.
func randAddr(rng *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d.%d:%d", 1+rng.IntN(222), rng.IntN(256), rng.IntN(256), 1+rng.IntN(254), 1+rng.IntN(65535))
}

// noLimits is the default table configuration without IP limits.
func noLimits() TableConfig {
	c := DefaultTableConfig()
	c.BucketIPLimit, c.TableIPLimit = 0, 0
	return c
}

// idInBucket returns a random NodeID at log distance d from self's key.
func idInBucket(rng *rand.Rand, self session.NodeID, d int) session.NodeID {
	sk := KeyOf(self)
	for {
		id := randID(rng)
		if LogDistance(sk, KeyOf(id)) == d {
			return id
		}
	}
}

// oracleClosest sorts a copy of entries by XOR distance to target and returns the first n.
func oracleClosest(entries []Entry, target Key, n int) []Entry {
	s := slices.Clone(entries)
	slices.SortFunc(s, func(a, b Entry) int { return DistCmp(target, a.Key, b.Key) })
	return s[:min(n, len(s))]
}

// ids returns the IDs of entries.
func ids(entries []Entry) []session.NodeID {
	out := make([]session.NodeID, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

// checkFailed returns the exchangeDone of a liveness check of peer that a's goroutine sent on time and that failed
// with err at its deadline, at (not late: checkStalled).
func checkFailed(a *routingActor, peer session.NodeID, err error, at time.Time) *exchangeDone {
	return &exchangeDone{from: a, peer: peer, check: true, err: err, deadline: at, sent: at.Add(-a.cfg.RequestTimeout), ended: at}
}
