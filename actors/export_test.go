package actors

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
