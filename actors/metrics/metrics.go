// Package metrics exposes a node's figures to Prometheus: connections, traffic, handshake failures, the routing
// table, gossip deliveries and propagation, queues and actor restarts. The collector reads them from the node's
// public API at each scrape; nothing is registered globally (use your own prometheus.Registry, or Handler).
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
)

// Namespace prefixes every metric name.
const Namespace = "actormesh"

// scrapeTimeout bounds the questions a scrape asks the node's actors (routing table, gossip relay).
const scrapeTimeout = 2 * time.Second

// Collector is a prometheus.Collector of one node's figures.
type Collector struct {
	node *actors.Node

	peers, bytes, messages, handshakeFailures, disconnects     *prometheus.Desc
	queuedBytes, queueDropped, restarts, inboundEvicted        *prometheus.Desc
	sendsHeldBack, sendsOverloaded, pendingHandshakes          *prometheus.Desc
	inboundDropped, duplicatesCutShort                         *prometheus.Desc
	routingEntries, lookups, lookupFailures, routingThrottled  *prometheus.Desc
	topicQueries, topicRegistrations, exchangesDropped         *prometheus.Desc
	rejectedIP, topicRegistrationsRefused                      *prometheus.Desc
	gossipPeers, gossipTopics, gossipCounter, gossipDropped    *prometheus.Desc
	gossipDelay, gossipHops, gossipRejectedPeers, gossipErrors *prometheus.Desc
}

// NewCollector returns a collector of node's figures.
func NewCollector(node *actors.Node) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
	}
	return &Collector{
		node:               node,
		peers:              d("peers", "Live connections by direction (inbound, outbound).", "direction"),
		bytes:              d("transport_bytes_total", "Transport bytes (encrypted frames) read (in) and written (out), handshakes excluded.", "direction"),
		messages:           d("messages_total", "Direct messages received (in) and sent (out) per protocol (gossip and routing included).", "direction", "protocol"),
		handshakeFailures:  d("handshake_failures_total", "Failed dials and handshakes by reason.", "reason"),
		disconnects:        d("disconnects_total", "Closed connections by disconnect reason.", "reason"),
		queuedBytes:        d("send_queue_bytes", "Bytes waiting in the outbound queues of all connections."),
		queueDropped:       d("send_queue_dropped_total", "Queued outbound messages never written: left in the queue of a connection that closed, in a write that failed, or over the maximum message size."),
		inboundDropped:     d("inbound_dropped_total", "Messages peers sent that were read and handed to no protocol actor, by reason: closing, protocol_stopped, unknown_protocol, type_refused, bad_payload.", "reason"),
		duplicatesCutShort: d("duplicates_cut_short_total", "Losing connections of simultaneous dials closed before the peer said goodbye or half-closed them (within the idle timeout): what the peer still sent on them is lost, uncounted."),
		restarts:           d("actor_restarts_total", "Failures of supervised actors (protocol actors, routing, gossip relay), each followed by a restart."),
		inboundEvicted:     d("inbound_evicted_total", "Inbound connections closed to make room for a newcomer when every inbound slot was taken."),
		pendingHandshakes:  d("pending_handshakes", "Handshakes in progress, dialed and accepted."),
		sendsHeldBack:      d("sends_held_back_total", "Sends and requests that waited for room in their peer's flow-control window for the protocol (the peer's protocol actor was behind)."),
		sendsOverloaded:    d("sends_overloaded_total", "Sends and requests that failed with ErrOverloaded (the peer's flow-control window for the protocol, or the send queue to the peer, stayed full until their context ended), and replies that did not fit the send queue."),
		routingEntries:     d("routing_table_entries", "Entries of the Kademlia routing table."),
		lookups:            d("routing_lookups_total", "Lookups asked of the routing actor: those run, and those refused before any request (no peer to start from, too many in progress, the actor stopping)."),
		lookupFailures:     d("routing_lookup_failures_total", "Lookups answered with an error or with no node found: refused, no node answered, or ended by the routing actor's failure or stop."),
		routingThrottled:   d("routing_throttled_total", "Discovery requests refused by the per-peer rate limit."),
		rejectedIP:         d("routing_rejected_ip_total", "Valid node records the routing table refused for its IP diversity limits (too many entries of one /24 or /64 in a bucket or in the table)."),
		exchangesDropped:   d("routing_exchanges_dropped_total", "Discovery exchanges outside lookups (with a new outbound peer, liveness checks) not started because the most allowed were in progress."),
		topicQueries:       d("routing_topic_queries_total", "Discovery requests served for a topic's registered nodes (topic discovery)."),
		topicRegistrations: d("routing_topic_registrations_total",
			"Registrations of peers on a topic this node accepted (renewals included)."),
		topicRegistrationsRefused: d("routing_topic_registrations_refused_total",
			"Registrations of peers on a topic this node refused: no valid record of the registrant's own, an address this node would not dial, or the registry's limits (per IP group of the connection, per topic and over all topics)."),
		gossipPeers:   d("gossip_peers", "Connected peers that speak gossip."),
		gossipTopics:  d("gossip_topics", "Topics this node has joined."),
		gossipCounter: d("gossip_events_total", "Gossip router events: delivered, duplicates, published, rejected, ignored, ihave_sent, ihave_received, iwant_sent, iwant_received, iwant_served, grafts_sent, prunes_sent, ...", "event"),
		gossipDropped: d("gossip_delivery_dropped_total", "Deliveries lost to full subscriber queues."),
		gossipRejectedPeers: d("gossip_banned_peers_total",
			"Peers banned for sending invalid gossip messages."),
		gossipErrors: d("gossip_errors_total", "Gossip messages refused: rate_limited, bad_signature, malformed, send_failure; rate_limited_control counts RPCs of control and subscriptions refused for the rate (control dropped, subscriptions deferred).", "kind"),
		gossipDelay:  d("gossip_propagation_delay_milliseconds", "Delay from publication to delivery of messages from other nodes."),
		gossipHops:   d("gossip_hops", "Hop counts of delivered messages from other nodes."),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.peers, c.bytes, c.messages, c.handshakeFailures, c.disconnects, c.queuedBytes, c.queueDropped, c.restarts, c.inboundEvicted, c.sendsHeldBack, c.sendsOverloaded, c.pendingHandshakes, c.inboundDropped, c.duplicatesCutShort,
		c.routingEntries, c.lookups, c.lookupFailures, c.routingThrottled, c.rejectedIP, c.exchangesDropped, c.topicQueries, c.topicRegistrations, c.topicRegistrationsRefused,
		c.gossipPeers, c.gossipTopics,
		c.gossipCounter, c.gossipDropped, c.gossipRejectedPeers, c.gossipErrors, c.gossipDelay, c.gossipHops,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Parts the node cannot answer (discovery disabled, node closing) are
// left out of the scrape rather than failing it.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s := c.node.Stats()
	gauge(c.peers, float64(s.PeersInbound), "inbound")
	gauge(c.peers, float64(s.PeersOutbound), "outbound")
	counter(c.bytes, s.BytesIn, "in")
	counter(c.bytes, s.BytesOut, "out")
	for p, v := range s.MessagesIn {
		counter(c.messages, v, "in", p)
	}
	for p, v := range s.MessagesOut {
		counter(c.messages, v, "out", p)
	}
	for r, v := range s.HandshakeFailures {
		counter(c.handshakeFailures, v, r)
	}
	for r, v := range s.Disconnects {
		counter(c.disconnects, v, r)
	}
	gauge(c.queuedBytes, float64(s.QueuedBytes))
	gauge(c.pendingHandshakes, float64(s.PendingHandshakes))
	counter(c.queueDropped, s.QueueDropped)
	counter(c.restarts, s.ActorRestarts)
	counter(c.inboundEvicted, s.InboundEvicted)
	counter(c.sendsHeldBack, s.SendsHeldBack)
	counter(c.sendsOverloaded, s.SendsOverloaded)
	for r, v := range s.InboundDropped {
		counter(c.inboundDropped, v, r)
	}
	counter(c.duplicatesCutShort, s.DuplicatesCutShort)

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if rt, err := c.node.RoutingTable(ctx); err == nil {
		gauge(c.routingEntries, float64(len(rt.Entries)))
		counter(c.lookups, rt.Stats.Lookups)
		counter(c.lookupFailures, rt.Stats.LookupFailures)
		counter(c.routingThrottled, rt.Stats.Throttled)
		counter(c.exchangesDropped, rt.Stats.ExchangesDropped)
		counter(c.rejectedIP, rt.Stats.RejectedIP)
		counter(c.topicQueries, rt.Stats.TopicQueries)
		counter(c.topicRegistrations, rt.Stats.TopicRegistrations)
		counter(c.topicRegistrationsRefused, rt.Stats.TopicRegistrationsRefused)
	}
	if gs, err := c.node.GossipStats(ctx); err == nil {
		c.collectGossip(ch, gs)
	}
}

func (c *Collector) collectGossip(ch chan<- prometheus.Metric, gs gossip.RelayStats) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(c.gossipPeers, prometheus.GaugeValue, float64(gs.Peers))
	ch <- prometheus.MustNewConstMetric(c.gossipTopics, prometheus.GaugeValue, float64(len(gs.Topics)))
	r := gs.Router
	for _, e := range []struct {
		name string
		v    uint64
	}{
		{"published", r.Published}, {"delivered", r.Delivered}, {"duplicates", r.Duplicates},
		{"dropped", r.Dropped}, {"stale", r.Stale}, {"rejected", r.Rejected}, {"ignored", r.Ignored}, {"validation_timeouts", r.TimedOut},
		{"ihave_sent", r.IHaveSent}, {"ihave_received", r.IHaveReceived}, {"iwant_sent", r.IWantSent},
		{"iwant_received", r.IWantReceived}, {"iwant_served", r.IWantServed}, {"iwant_repeated", r.IWantRepeated},
		{"iwant_uncached", r.IWantUncached}, {"iwant_limited", r.IWantLimited}, {"iwant_expired", r.IWantExpired},
		{"ihave_ignored", r.IHaveIgnored},
		{"grafts_sent", r.GraftsSent},
		{"grafts_received", r.GraftsReceived}, {"prunes_sent", r.PrunesSent}, {"prunes_received", r.PrunesReceived},
		{"tree_reports", r.TreeReports}, {"tree_shortcuts", r.TreeShortcuts}, {"tree_moves", r.TreeMoves},
		{"tree_damped", r.TreeDamped}, {"tree_cuts", r.TreeCuts}, {"tree_crossed", r.TreeCrossed},
		{"tree_distrusted", r.TreeDistrusted}, {"tree_shunned", r.TreeShunned},
		{"tree_beacons_checked", r.TreeBeaconsChecked}, {"tree_bad_beacons", r.TreeBadBeacons},
		{"tree_beacons_unpaid", r.TreeBeaconsUnpaid}, {"subscriptions_untracked", r.SubscriptionsUntracked},
		{"topic_registrations", r.TopicRegistrations}, {"topic_searches", r.TopicSearches},
		{"topic_lookups_failed", r.TopicLookupsFailed},
	} {
		counter(c.gossipCounter, e.v, e.name)
	}
	counter(c.gossipCounter, gs.Verified, "signatures_verified")
	counter(c.gossipDropped, gs.DeliveryDropped)
	counter(c.gossipRejectedPeers, gs.Banned)
	counter(c.gossipErrors, gs.RateLimited, "rate_limited")
	counter(c.gossipErrors, gs.RateLimitedControl, "rate_limited_control")
	counter(c.gossipErrors, gs.BadSignatures, "bad_signature")
	counter(c.gossipErrors, gs.Malformed, "malformed")
	counter(c.gossipErrors, gs.SendFailures, "send_failure")
	if h, ok := histogram(c.gossipDelay, gs.Delay); ok {
		ch <- h
	}
	if h, ok := histogram(c.gossipHops, gs.Hops); ok {
		ch <- h
	}
}

// histogram converts one of the relay's histograms (counts per bucket) to Prometheus's (cumulative counts).
func histogram(d *prometheus.Desc, h gossip.Histogram) (prometheus.Metric, bool) {
	if len(h.Counts) != len(h.Bounds)+1 {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		cum += h.Counts[i]
		buckets[b] = cum
	}
	m, err := prometheus.NewConstHistogram(d, h.Count, h.Sum, buckets)
	return m, err == nil
}

// Handler serves the node's metrics and the Go runtime's (goroutines, memory, GC) in the Prometheus text format,
// from a registry of its own.
func Handler(node *actors.Node) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(node), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
