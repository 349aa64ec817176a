package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// ErrNotFound: a lookup finished without finding the node.
var ErrNotFound = errors.New("node not found in the DHT")

// ErrDiscoveryDisabled: the node runs with Config.DisableDiscovery.
var ErrDiscoveryDisabled = errors.New("discovery is disabled on this node")

func (n *Node) routingActor() error {
	if n.cfg.DisableDiscovery {
		return ErrDiscoveryDisabled
	}
	if _, err := n.peerManager(); err != nil { // same started/closed checks
		return err
	}
	select {
	case <-n.routingDone:
		return n.routingStopped()
	default:
		return nil
	}
}

// routingStopped is the error of a discovery call once the routing actor has stopped: ErrClosed when the node is
// closing, routing.ErrStopped when the actor failed too often and its supervisor gave up on it.
func (n *Node) routingStopped() error {
	select {
	case <-n.closed:
		return ErrClosed
	default:
		return routing.ErrStopped
	}
}

// FindClosest runs an iterative Kademlia lookup for the nodes closest to target. Errors: routing.ErrNoPeers when
// the node knows no peer to ask, routing.ErrNoAnswer when it asked some and none answered (the result still says
// how many it asked: Queried), routing.ErrTooManyLookups when Routing.MaxLookups are in progress,
// ErrDiscoveryDisabled, ErrClosed, ErrNotStarted, routing.ErrStopped, or ctx's error (nothing started if it had
// ended already).
func (n *Node) FindClosest(ctx context.Context, target routing.Key) (routing.LookupResult, error) {
	return n.lookup(ctx, &routing.LookupRequest{Target: target})
}

// FindClosestFrom is FindClosest that also starts from the given peers (bootnodes, say), whether or not the
// routing table knows them yet.
func (n *Node) FindClosestFrom(ctx context.Context, target routing.Key, seeds []session.PeerAddr) (routing.LookupResult, error) {
	req := &routing.LookupRequest{Target: target}
	for _, s := range seeds {
		req.Seeds = append(req.Seeds, routing.Entry{ID: s.ID, Key: routing.KeyOf(s.ID), Addr: s.Addr})
	}
	return n.lookup(ctx, req)
}

func (n *Node) lookup(ctx context.Context, req *routing.LookupRequest) (routing.LookupResult, error) {
	if err := n.routingActor(); err != nil {
		return routing.LookupResult{}, err
	}
	if err := ctx.Err(); err != nil { // a lookup nobody waits for would still take a slot and send requests
		return routing.LookupResult{}, fmt.Errorf("lookup: %w", err)
	}
	reply := make(chan routing.LookupResult, 1)
	req.Reply, req.Ctx, req.Fallback = reply, ctx, n.connectedEntries()
	n.system.Root.Send(n.routing, req)
	select {
	case r := <-reply:
		switch {
		case errors.Is(r.Err, routing.ErrStopped):
			r.Err = n.routingStopped()
		case errors.Is(r.Err, routing.ErrNoAnswer) && ctx.Err() != nil:
			r.Err = fmt.Errorf("lookup: %w", ctx.Err()) // the caller gave up before anybody answered
		}
		return r, r.Err
	case <-ctx.Done():
		return routing.LookupResult{}, fmt.Errorf("lookup: %w", ctx.Err())
	case <-n.closed:
		return routing.LookupResult{}, ErrClosed
	case <-n.routingDone:
		return routing.LookupResult{}, fmt.Errorf("lookup: %w", n.routingStopped())
	}
}

// connectedEntries returns the connected peers as lookup starting points (routing.LookupRequest.Fallback), with the
// address each declared it listens on, if any (the lookup asks them over the connection).
func (n *Node) connectedEntries() []routing.Entry {
	conns := n.peers.all()
	out := make([]routing.Entry, 0, len(conns))
	for _, pc := range conns {
		e := routing.Entry{ID: pc.id, Key: routing.KeyOf(pc.id)}
		if addrs := pc.sc.Peer().ListenAddrs; len(addrs) > 0 {
			e.Addr = addrs[0]
		}
		out = append(out, e)
	}
	return out
}

// bootstrapNetwork is the node as the bootstrapper's Network: its dials are discovery's (the bootnodes it contacts
// for a lookup close after Config.DiscoveryIdleTimeout unless kept).
type bootstrapNetwork struct{ *Node }

func (b bootstrapNetwork) Connect(ctx context.Context, addr session.PeerAddr, keep bool) error {
	return b.connect(ctx, addr, keep, true)
}

// SetJoining implements bootstrap.Network.
func (b bootstrapNetwork) SetJoining(joining bool) { b.joining.Store(joining) }

// routingNetwork is the node as the routing actor's Network: its requests' errors that prove nothing against the
// peer's liveness are marked routing.ErrPeerBusy, so that a full connection table or the node's own shutdown does
// not get live nodes evicted from the routing table; a request to a peer this node bans routing.ErrPeerBanned, which
// drops it from the table; those the peer itself refused (an
// error reply, a goodbye other than its shutdown) routing.ErrPeerRefused, which tells the peer is up; a connection
// closed by the peer's address before the handshake routing.ErrRefusedBeforeHandshake; and a failed request that
// first waited for a free outbound slot tells how long (routing.LocalWaitError).
type routingNetwork struct{ *Node }

// closing tells whether the node is closing (Close was called, or it failed).
func (r routingNetwork) closing() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// AddAddress implements routing.Network (records carry a signer's id, never the zero one).
func (r routingNetwork) AddAddress(id session.NodeID, addr string) { r.addrs.put(id, addr) }

func (r routingNetwork) Request(ctx context.Context, peer session.NodeID, protocol string, msg proto.Message) (proto.Message, error) {
	// Discovery's own request: a connection dialed for it closes after Config.DiscoveryIdleTimeout.
	var waited slotWait
	reply, err := r.Node.request(contextWithSlotWait(ctx, &waited), peer, protocol, msg, false)
	if err == nil {
		return reply, nil
	}
	var answered *RemoteError // any error reply: the peer is up
	var goodbye *goodbyeError
	switch {
	case r.closing():
		// A closing node's requests fail with ErrClosed, or ErrPeerGone as its connections close, before its
		// routing actor stops: they are no failures of the peers', whose entries the actor then saves to the peer
		// store.
		err = fmt.Errorf("%w: %w", routing.ErrPeerBusy, err)
	case errors.As(err, &answered),
		errors.As(err, &goodbye) && goodbye.reason != messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN:
		err = fmt.Errorf("%w: %w", routing.ErrPeerRefused, err)
	case errors.Is(err, ErrBanned): // this node's own ban: the routing table drops the peer
		err = fmt.Errorf("%w: %w", routing.ErrPeerBanned, err)
	case errors.Is(err, ErrTooManyPeers): // this node's own limit
		err = fmt.Errorf("%w: %w", routing.ErrPeerBusy, err)
	case errors.Is(err, errClosedBeforeHandshake):
		err = fmt.Errorf("%w: %w", routing.ErrRefusedBeforeHandshake, err)
	}
	if w := waited.waited(time.Now()); w > 0 { // a wait its context's end cut short included
		err = &routing.LocalWaitError{Waited: w, Err: err}
	}
	return reply, err
}

// Lookup finds the address of a node by its id through the DHT: from the node's signed record, which the lookup
// learns from the node itself or from the nodes closest to it (or knew before: the routing table's record). It
// returns ErrNotFound when the lookup ends without having learned the record, wrapping routing.ErrNoAnswer too when
// no node it asked answered (the node may well exist), routing.ErrNoPeers when the node knows no peer to ask,
// routing.ErrTooManyLookups when Routing.MaxLookups are under way, and the context's error (nothing started if it
// had ended already).
func (n *Node) Lookup(ctx context.Context, id session.NodeID) (session.PeerAddr, error) {
	addr, _, err := n.LookupWithStats(ctx, id)
	return addr, err
}

// LookupWithStats is Lookup that also returns the lookup's figures (rounds, requests, duration); they are zero when
// id is the node itself, whose address it returns without a lookup (ErrNotFound if the node listens nowhere).
func (n *Node) LookupWithStats(ctx context.Context, id session.NodeID) (session.PeerAddr, routing.LookupResult, error) {
	if err := n.routingActor(); err != nil { // ErrNotStarted, ErrClosed, ErrDiscoveryDisabled, as for any id
		return session.PeerAddr{}, routing.LookupResult{}, err
	}
	if id == n.ID() {
		if self := n.Addr(); self.Addr != "" {
			return self, routing.LookupResult{}, nil
		}
		return session.PeerAddr{}, routing.LookupResult{}, fmt.Errorf("%w: %s is this node, which listens nowhere", ErrNotFound, id.Short())
	}
	res, err := n.lookup(ctx, &routing.LookupRequest{Target: routing.KeyOf(id), Want: &id})
	noAnswer := errors.Is(err, routing.ErrNoAnswer)
	switch {
	case err != nil && !noAnswer:
		return session.PeerAddr{}, res, err
	case res.Wanted != nil: // its record, known before if nobody answered
		return session.PeerAddr{ID: id, Addr: res.Wanted.Addr}, res, nil
	case noAnswer:
		return session.PeerAddr{}, res, fmt.Errorf("%w: %s: %w", ErrNotFound, id.Short(), err)
	}
	return session.PeerAddr{}, res, fmt.Errorf("%w: %s after %d requests", ErrNotFound, id.Short(), res.Queried)
}

// RoutingTable returns a copy of the node's Kademlia table and the routing counters.
func (n *Node) RoutingTable(ctx context.Context) (routing.Snapshot, error) {
	if err := n.routingActor(); err != nil {
		return routing.Snapshot{}, err
	}
	if err := ctx.Err(); err != nil {
		return routing.Snapshot{}, fmt.Errorf("routing table: %w", err)
	}
	reply := make(chan routing.Snapshot, 1)
	n.system.Root.Send(n.routing, &routing.SnapshotRequest{Reply: reply})
	select {
	case s := <-reply:
		if s.Err != nil {
			return routing.Snapshot{}, fmt.Errorf("routing table: %w", s.Err)
		}
		return s, nil
	case <-ctx.Done():
		return routing.Snapshot{}, fmt.Errorf("routing table: %w", ctx.Err())
	case <-n.closed:
		return routing.Snapshot{}, ErrClosed
	case <-n.routingDone:
		return routing.Snapshot{}, fmt.Errorf("routing table: %w", n.routingStopped())
	}
}

// AddRecords hands signed node records to the routing table; invalid ones are dropped there.
func (n *Node) AddRecords(records []*messages.NodeRecord) {
	if n.routingActor() != nil {
		return
	}
	n.system.Root.Send(n.routing, &routing.AddRecords{Records: records})
}

// TransientOutbound tells whether the live connection to peer is one this node dialed on demand and does not keep.
func (n *Node) TransientOutbound(peer session.NodeID) bool {
	pc := n.peers.get(peer)
	return pc != nil && pc.outbound && !pc.kept.Load()
}

// OutboundCount is the number of live connections this node dialed and keeps (Connect with keep); connections
// opened for lookups or on-demand sends do not count.
func (n *Node) OutboundCount() int {
	c := 0
	for _, pc := range n.peers.all() {
		if pc.outbound && pc.kept.Load() {
			c++
		}
	}
	return c
}
