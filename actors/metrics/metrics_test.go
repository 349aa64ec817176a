package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/metrics"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scrape fetches h and parses the Prometheus text format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("the scrape is not valid Prometheus text: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels include want (counter, gauge or histogram
// count), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestHandlerExposesTrafficRoutingAndGossipFigures(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Gossip.Router.HeartbeatInterval = 100 * time.Millisecond
		cfg.Gossip.Router.GossipDelay = 50 * time.Millisecond
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	got := make(chan *gossip.Delivery, 1)
	sub, err := b.Subscribe(ctx, "news", func(d *gossip.Delivery) { got <- d })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	if _, err := a.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "news", wrapperspb.String("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-ctx.Done():
		t.Fatal("the message was not delivered")
	}

	if _, err := a.FindTopicPeers(ctx, "news"); err != nil { // a topic query b serves
		t.Fatal(err)
	}

	fams := scrape(t, metrics.Handler(b))
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"actormesh_peers", map[string]string{"direction": "inbound"}, 1},
		{"actormesh_transport_bytes_total", map[string]string{"direction": "in"}, 1},
		{"actormesh_messages_total", map[string]string{"direction": "in", "protocol": gossip.Protocol}, 1},
		{"actormesh_routing_table_entries", nil, 1},
		{"actormesh_routing_topic_queries_total", nil, 1},
		{"actormesh_routing_topic_registrations_total", nil, 0},
		{"actormesh_routing_exchanges_dropped_total", nil, 0},
		{"actormesh_routing_rejected_ip_total", nil, 0},
		{"actormesh_routing_topic_registrations_refused_total", nil, 0},
		{"actormesh_gossip_events_total", map[string]string{"event": "delivered"}, 1},
		{"actormesh_gossip_events_total", map[string]string{"event": "signatures_verified"}, 1},
		{"actormesh_gossip_events_total", map[string]string{"event": "stale"}, 0},
		{"actormesh_gossip_events_total", map[string]string{"event": "ihave_ignored"}, 0},
		{"actormesh_gossip_events_total", map[string]string{"event": "iwant_uncached"}, 0},
		{"actormesh_gossip_events_total", map[string]string{"event": "iwant_limited"}, 0},
		{"actormesh_gossip_events_total", map[string]string{"event": "iwant_expired"}, 0},
		{"actormesh_gossip_events_total", map[string]string{"event": "subscriptions_untracked"}, 0},
		{"actormesh_gossip_errors_total", map[string]string{"kind": "rate_limited_control"}, 0},
		{"actormesh_gossip_propagation_delay_milliseconds", nil, 1},
		{"actormesh_gossip_hops", nil, 1},
		{"actormesh_actor_restarts_total", nil, 0},
		{"actormesh_inbound_evicted_total", nil, 0},
		{"actormesh_sends_held_back_total", nil, 0},
		{"actormesh_sends_overloaded_total", nil, 0},
		{"actormesh_duplicates_cut_short_total", nil, 0},
		{"actormesh_send_queue_bytes", nil, 0},
		{"actormesh_pending_handshakes", nil, 0},
		{"go_goroutines", nil, 1},
	}
	for _, c := range checks {
		v, ok := value(fams, c.name, c.labels)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (present %v), want >= %v", c.name, c.labels, v, ok, c.min)
		}
	}
}

func TestHandshakeFailuresAreLabelledByReason(t *testing.T) {
	b := testkit.NewNetwork(t, 1).Nodes[0]
	c := testkit.NewNetwork(t, 1, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.NetworkID = "elsewhere" })).Nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx, b.Addr(), false); err == nil {
		t.Fatal("a node of another network connected")
	}
	fams := scrape(t, metrics.Handler(c))
	if v, _ := value(fams, "actormesh_handshake_failures_total", map[string]string{"reason": "network_mismatch"}); v != 1 {
		t.Errorf("handshake failures with reason network_mismatch = %v, want 1", v)
	}
}

// A node that has had no failure yet exposes every documented handshake failure and disconnect reason at 0, so
// that dashboards and alerts find their series from the start.
func TestEveryReasonIsExposedFromTheStart(t *testing.T) {
	n := testkit.NewNetwork(t, 1).Nodes[0]
	fams := scrape(t, metrics.Handler(n))
	for _, r := range []string{"dial", "timeout", "wrong_peer", "network_mismatch", "version_mismatch", "bad_signature",
		"refused", "evicted", "other"} {
		if v, ok := value(fams, "actormesh_handshake_failures_total", map[string]string{"reason": r}); !ok || v != 0 {
			t.Errorf("handshake failures with reason %s = %v (present %v), want 0", r, v, ok)
		}
	}
	for _, r := range []string{"DISCONNECT_REASON_SHUTDOWN", "DISCONNECT_REASON_SLOW_PEER", "DISCONNECT_REASON_PROTOCOL_ERROR"} {
		if v, ok := value(fams, "actormesh_disconnects_total", map[string]string{"reason": r}); !ok || v != 0 {
			t.Errorf("disconnects with reason %s = %v (present %v), want 0", r, v, ok)
		}
	}
}
