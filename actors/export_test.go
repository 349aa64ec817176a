package actors

import (
	"context"

	"github.com/actormesh/actormesh/session"
)

// ProtocolSubscriptions counts the topic subscriptions the node keeps tied to protocol's actor (SubscribeProtocol),
// for tests.
func (n *Node) ProtocolSubscriptions(protocol string) int {
	n.protocols.mu.RLock()
	defer n.protocols.mu.RUnlock()
	if reg := n.protocols.m[protocol]; reg != nil {
		return len(reg.subs)
	}
	return -1
}

// ConnectAsBootstrapper connects to addr and keeps it as the node's own choice, as its bootstrapper does.
func (n *Node) ConnectAsBootstrapper(ctx context.Context, addr session.PeerAddr) error {
	return n.connect(ctx, addr, true, true)
}

// TrackedRequests counts the peers' requests the node tracks for protocol's actor (registration.requests), for
// tests; -1 when the protocol is not registered.
func (n *Node) TrackedRequests(protocol string) int {
	n.protocols.mu.RLock()
	defer n.protocols.mu.RUnlock()
	reg := n.protocols.m[protocol]
	if reg == nil {
		return -1
	}
	reg.reqMu.Lock()
	defer reg.reqMu.Unlock()
	return len(reg.requests)
}

// DialLists returns the peers and bootnodes the node dials (Config.Peers and Config.Bootstrap.Bootnodes as it keeps
// them).
func (n *Node) DialLists() (peers, bootnodes []session.PeerAddr) {
	return n.cfg.Peers, n.cfg.Bootstrap.Bootnodes
}

// ConnBuffers returns the buffer pool of the node's connection to peer (Config.Buffers, or the node's own), nil
// when it has none.
func (n *Node) ConnBuffers(peer session.NodeID) *session.BufferPool {
	if pc := n.peers.get(peer); pc != nil {
		return pc.sc.Buffers()
	}
	return nil
}

// ConnClosing tells whether the node's connection to peer has begun to close (its goodbye said or heard) and is
// still registered, for tests.
func (n *Node) ConnClosing(peer session.NodeID) bool {
	pc := n.peers.get(peer)
	return pc != nil && pc.isClosing()
}
