package adminapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// When none of the nodes a lookup asked answered (routing.ErrNoAnswer), the API answers 503, as when the node
// knows no peer to ask: GET /v1/topics/{topic}/registered answered 200 [] (an audit's finding, stop 54), and a
// send to a peer whose address is unknown 404, though the lookup proved nothing.
func TestALookupNoNodeAnsweredIs503(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithBootnode(), testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.Interval = 50 * time.Millisecond
		cfg.Bootstrap.TargetOutbound = 0
	}))
	asker := nw.Nodes[2]
	testkit.WaitFor(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		rt, err := asker.RoutingTable(ctx)
		return err == nil && len(rt.Entries) >= 2
	}, "the asker to know both others")
	for _, n := range nw.Nodes[:2] {
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return len(asker.Peers()) == 0 }, "the connections to close")
	srv := serve(t, asker)
	if code, body := call(t, "GET", srv.URL+"/v1/topics/rare/registered", "", ""); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "no node answered") {
		t.Errorf("registered nodes, no node answering: %d %s, want 503", code, body)
	}
	unknown, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	code, body := call(t, "POST", srv.URL+"/v1/peers/"+unknown.NodeID().String()+"/messages", "application/json",
		`{"protocol": "echo/1", "data": "x", "timeout_ms": 3000}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no node answered") {
		t.Errorf("a send to an unknown peer, no node answering its lookup: %d %s, want 503", code, body)
	}
}
