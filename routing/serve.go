package routing

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/actormesh/actormesh/messages"
)

// Answering the peers: a FindNode served within the asker's rate limit, and who among the askers the table takes.

// claimsItsHost tells whether an asker's record names the host its connection comes from (remote), or remote is
// no IP address (a transport without IPs): only then does the node take the asker into its table, as having
// answered. A record is self-signed and may name any address: one host asking with many identities, each record
// naming another /24, used to get past the table's IP limits (TableIPLimit, BucketIPLimit), all its entries
// marked alive. An asker whose record names another host is learned, if at all, the way other nodes are: from
// replies, and checked at that address.
func claimsItsHost(claimed, remote string) bool {
	rip, err := netip.ParseAddrPort(remote)
	if err != nil {
		return true
	}
	_, ip, err := splitAddr(claimed)
	return err == nil && ip.IsValid() && ip.WithZone("").Unmap() == rip.Addr().WithZone("").Unmap()
}

// serve answers a FindNode from a peer, within its rate limit.
func (a *routingActor) serve(req InboundRequest, now time.Time) {
	fn, ok := req.Message().(*messages.FindNode)
	if !ok {
		_ = req.ReplyError(fmt.Errorf("routing: unexpected %T", req.Message()))
		return
	}
	if !a.limiter.Allow(req.Sender(), now) {
		a.stats.Throttled++
		_ = req.ReplyError(errors.New("overloaded: too many FindNode requests"))
		return
	}
	target, err := KeyFromBytes(fn.GetTarget())
	if err != nil {
		_ = req.ReplyError(fmt.Errorf("routing: bad target: %w", err))
		return
	}
	var sender *Entry
	if fn.Sender != nil {
		// The sender is authenticated by the connection; its record must be its own.
		if e, err := a.records.entry(fn.Sender); err == nil && e.ID == req.Sender() {
			if claimsItsHost(e.Addr, remoteAddr(req)) {
				a.addRecord(fn.Sender, now, false, true)
				a.table.MarkAlive(e.ID, now)
			}
			sender = &e
		} else if !staleOwn(err, fn.Sender, req.Sender()) {
			a.stats.BadRecords++
		}
	}
	a.stats.RequestsServed++
	nodes := a.nodesFor(target)
	if fn.Topic {
		a.stats.TopicQueries++
		if fn.Register {
			a.register(req, target, sender, now)
		}
		nodes.Registered = a.topics.Registered(target, now, a.cfg.TopicRegistrations, req.Sender())
	}
	_ = req.Reply(nodes)
}

// register registers the asker of req, whose own verified record is sender (nil when it sent none of its own), on
// topic, and counts the registration, or its refusal in Stats.TopicRegistrationsRefused, logged at debug with the
// reason. The registrant is answered as usual either way: the protocol has no word for a refusal.
func (a *routingActor) register(req InboundRequest, topic Key, sender *Entry, now time.Time) {
	from := remoteAddr(req)
	var reason string
	switch {
	case sender == nil:
		reason = "no valid record of the registrant's own"
	case !dialableFrom(a.local, sender.Addr):
		reason = "the registrant's address is not one this node dials"
	default:
		if reason = a.topics.register(topic, *sender, from, now); reason == "" {
			a.stats.TopicRegistrations++
			return
		}
	}
	a.stats.TopicRegistrationsRefused++
	a.log.Debug().Str("peer", req.Sender().Short()).Str("remote", from).Str("topic_key", topic.String()[:16]).
		Str("reason", reason).Msg("topic registration refused")
}

// nodesFor builds a bounded answer: at most k records of the closest known nodes, plus the local record.
func (a *routingActor) nodesFor(target Key) *messages.Nodes {
	closest := a.table.Closest(target, a.cfg.Table.K)
	out := &messages.Nodes{Records: make([]*messages.NodeRecord, 0, len(closest)), Sender: a.local}
	for _, e := range closest {
		if e.Record != nil {
			out.Records = append(out.Records, e.Record)
		}
	}
	return out
}
