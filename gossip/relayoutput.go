package gossip

// The relay actor carrying out the Router's outputs: the RPCs to send, the deliveries to its subscriptions, the
// penalties, and what it asks of the node (connections, topic discovery, releases).

import (
	"time"

	"github.com/actormesh/actormesh/messages"
)

// delivery describes m for subscribers.
func (a *relayActor) delivery(m *Message, now time.Time) *Delivery {
	origin := time.Unix(0, m.OriginTime)
	return &Delivery{
		Topic: m.Topic, ID: m.ID, Origin: m.Origin, Seq: m.Seq, OriginTime: origin, Hops: m.Hops,
		ReceivedAt: now, Delay: now.Sub(origin), Local: m.Hops == 0 && m.Origin == a.net.ID(), Data: m.Data,
	}
}

// apply carries out a Router output: one RPC per peer (control ahead of messages), deliveries, penalties.
func (a *relayActor) apply(out Output) {
	if len(out.Send) > 0 {
		a.sendAll(out.Send)
	}
	now := time.Now()
	for _, m := range out.Deliver {
		d := a.delivery(m, now)
		if !d.Local {
			// A delay below zero is the origin's clock ahead of this node's (up to MaxClockSkew): it counts as
			// zero, or one skewed publisher took the histogram's sum down and its mean below zero.
			a.delay.observe(float64(max(d.Delay, 0)) / float64(time.Millisecond))
			a.hops.observe(float64(d.Hops))
		}
		for _, s := range a.subs[m.Topic] {
			c := *d
			if !s.push(&c) {
				a.stats.DeliveryDropped++
				s.warnDropped(a.log, now)
			}
		}
	}
	for _, p := range out.Penalize {
		why := p.Why
		if why == "" {
			why = "rejected by validation"
		}
		a.penalize(p, why)
	}
	for _, id := range out.Connect {
		a.log.Debug().Str("peer", id.Short()).Msg("gossip: connecting to a tree shortcut")
		a.net.Connect(id)
	}
	for _, id := range out.Relayed {
		a.net.Relayed(id)
	}
	for _, d := range out.Discover {
		a.log.Debug().Str("topic", d.Topic).Bool("register", d.Register).Int("want", d.Want).Msg("gossip: topic discovery in the DHT")
		a.net.DiscoverTopic(d.Topic, d.Register, d.Want)
	}
	for _, id := range out.Release {
		a.net.Release(id)
	}
	for _, id := range out.Keep {
		a.net.Keep(id)
	}
	for _, id := range out.Hello {
		if a.known(id) {
			a.sendHello(id)
			delete(a.helloAgain, id) // one hello this heartbeat (flushHellos)
		}
	}
}

// rpcEnvelopeBound bounds what an RPC adds around its control (the field's tag and length).
const rpcEnvelopeBound = 16

// sendAll sends each peer what sends has for it, the peers in the order sends first names them (the router lists
// tree links first: they get their copy queued first). A peer's sends go in one RPC, or in as many as it takes to
// keep each under MaxRPCSize (the network refuses larger ones): control rides the first.
func (a *relayActor) sendAll(sends []Send) {
	e := &a.enc
	taken := e.taken[:0]
	for range sends {
		taken = append(taken, false)
	}
	for i := range sends {
		if taken[i] {
			continue
		}
		to := sends[i].To
		rpc := e.begin()
		size := 0
		for j := i; j < len(sends); j++ {
			s := &sends[j]
			if taken[j] || s.To != to {
				continue
			}
			taken[j] = true
			// A control too large for one RPC (many busy topics) goes in parts: sent whole, the Network refused
			// it, and all control to the peer was lost.
			// fit starts a new RPC when n more bytes would not fit in this one, and counts them.
			fit := func(n int) {
				if size > 0 && size+n > a.cfg.MaxRPCSize {
					a.sendRPC(to, rpc, len(rpc.Messages) == 0)
					rpc, size = e.begin(), 0
				}
				size += n
			}
			msgSize := 0
			if s.Msg != nil {
				msgSize = messageWireSize(s.Msg)
			}
			var parts []*Control
			if s.Control != nil {
				parts = splitControl(s.Control, a.cfg.MaxRPCSize-rpcEnvelopeBound, messages.MaxGossipRPCIDs)
			}
			for k, c := range parts {
				if k == len(parts)-1 { // the message goes with the last part
					fit(controlWireBound(c) + msgSize)
				} else {
					fit(controlWireBound(c))
				}
				e.addControl(c)
			}
			if s.Msg != nil {
				if len(parts) == 0 {
					fit(msgSize)
				}
				e.addMessage(s.Msg)
			}
		}
		a.sendRPC(to, rpc, len(rpc.Messages) == 0)
	}
	e.taken = taken
	e.end()
}
