package routing

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// verifiedRecords remembers records whose signature verified, so that the same record arriving again in other
// answers costs a map lookup instead of an ed25519 verification. It is bounded (an arbitrary entry is dropped when
// full) and safe for concurrent use: the routing actor and its lookup actors share it.
type verifiedRecords struct {
	mu  sync.Mutex
	max int
	m   map[session.NodeID]verifiedRecord
}

// verifiedRecord identifies a verified record by its digest (recordDigest) rather than copies of its fields: 24
// bytes per record instead of ~140.
type verifiedRecord struct {
	seq    uint64
	digest [16]byte
}

// recordDigest hashes everything a record's signature covers and the signature itself, so that equal digests mean
// the same signed record (128 bits of SHA-256: no second preimage can be found). The encoding of the signed bytes
// is unambiguous (addresses are length-prefixed), and so is the signature's, which comes last with its length.
func recordDigest(id session.NodeID, r *messages.NodeRecord) (d [16]byte) {
	// Built on the stack (a record with one address and its signature takes ~150 bytes): the answers of a
	// lookup carry up to 16 records each, and allocating this per record was 7 % of node sim's allocated bytes.
	var buf [512]byte
	b := appendRecordSigningBytes(buf[:0], id, r.GetSeq(), r.GetAddrs())
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.GetSignature())))
	sum := sha256.Sum256(append(b, r.GetSignature()...))
	copy(d[:], sum[:])
	return d
}

func newVerifiedRecords(max int) *verifiedRecords {
	return &verifiedRecords{max: max, m: make(map[session.NodeID]verifiedRecord)}
}

// entry verifies r (or finds it verified already) and returns its table entry, whose Record holds only what the
// signature covers (see signedOnly). A genuine record older than one verified before for the same node fails with
// ErrStaleRecord: an old record replayed (its node has moved since) must not redirect lookups or the address book
// to where the node was.
func (v *verifiedRecords) entry(r *messages.NodeRecord) (Entry, error) {
	if id, err := session.NodeIDFromBytes(r.GetId()); err == nil {
		v.mu.Lock()
		known, ok := v.m[id]
		v.mu.Unlock()
		// Every signed field must match: a forger could pair a valid signature with other addresses.
		if ok && known.seq == r.GetSeq() && known.digest == recordDigest(id, r) {
			r = signedOnly(r)
			return Entry{ID: id, Key: KeyOf(id), Addr: r.GetAddrs()[0], Record: r}, nil
		}
	}
	e, err := EntryFromRecord(r)
	if err != nil {
		return Entry{}, err
	}
	v.mu.Lock()
	if known, ok := v.m[e.ID]; ok && known.seq > r.GetSeq() { // a newer one was verified before
		v.mu.Unlock()
		return Entry{}, staleRecord(e.ID, r.GetSeq(), known.seq)
	}
	if _, ok := v.m[e.ID]; !ok && len(v.m) >= v.max {
		for id := range v.m {
			delete(v.m, id)
			break
		}
	}
	v.m[e.ID] = verifiedRecord{seq: r.GetSeq(), digest: recordDigest(e.ID, r)}
	v.mu.Unlock()
	return e, nil
}

// staleRecord is the error of a record of node id with sequence number seq when have was verified before.
func staleRecord(id session.NodeID, seq, have uint64) error {
	return fmt.Errorf("%w: node %s seq %d, have %d", ErrStaleRecord, id.Short(), seq, have)
}

// checkReply checks a NODES reply from a peer for protocol violations: more than MaxReplyRecords records (or
// registered records), or a sender record that is not the peer's own valid record (ErrForgedSender: a bad one, or
// another node's, fresh or stale). The peer's own record, genuine but older than one verified before, is no
// violation. Invalid records among the others are only dropped (they may be relayed in good faith), not held
// against the peer.
func (v *verifiedRecords) checkReply(from session.NodeID, nodes *messages.Nodes) error {
	if n := len(nodes.GetRecords()); n > MaxReplyRecords {
		return fmt.Errorf("%w: %d records, limit %d", ErrOversizedReply, n, MaxReplyRecords)
	}
	if n := len(nodes.GetRegistered()); n > MaxReplyRecords {
		return fmt.Errorf("%w: %d registered records, limit %d", ErrOversizedReply, n, MaxReplyRecords)
	}
	if s := nodes.GetSender(); s != nil {
		e, err := v.entry(s)
		if errors.Is(err, ErrStaleRecord) {
			// Genuine (entry verified it before finding it stale) but old. The peer's own is no forgery (a newer
			// record of it is known: its clock went back?); another node's, stale or not, is one.
			if id, _ := session.NodeIDFromBytes(s.GetId()); id != from {
				return fmt.Errorf("%w: stale record of %s", ErrForgedSender, id.Short())
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrForgedSender, err)
		}
		if e.ID != from {
			return fmt.Errorf("%w: record of %s", ErrForgedSender, e.ID.Short())
		}
	}
	return nil
}
