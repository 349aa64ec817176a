package adminapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts the API of node on a test server; both close at the end of the test.
func serve(t *testing.T, node *actors.Node) *httptest.Server {
	t.Helper()
	api := adminapi.New(node, adminapi.Config{MaxBodyBytes: 4096})
	srv := httptest.NewServer(api)
	t.Cleanup(func() { api.Close(); srv.Close() })
	return srv
}

// call sends a request and returns the status and the body.
func call(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBadRequestsGetClientErrorsWithAMessage(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0]
	srv := serve(t, node)
	unknown, _ := session.GenerateIdentity()
	peerURL := srv.URL + "/v1/peers/" + unknown.NodeID().String() + "/messages"
	cases := []struct {
		name, method, path, contentType, body string
		status                                int
		message                               string
	}{
		{"malformed JSON", "POST", "/v1/topics/t/messages", "application/json", `{"data": `, 400, "bad JSON body"},
		{"unknown field", "POST", "/v1/topics/t/messages", "", `{"payload": "x"}`, 400, `unknown field "payload"`},
		{"two values", "POST", "/v1/topics/t/messages", "", `{"data": "x"} {}`, 400, "more after the value"},
		{"both payload forms", "POST", "/v1/topics/t/messages", "", `{"data": "x", "data_base64": "eA=="}`, 400, "not both"},
		{"bad base64", "POST", "/v1/topics/t/messages", "", `{"data_base64": "!!"}`, 400, "data_base64"},
		{"no payload", "POST", "/v1/topics/t/messages", "", `{}`, 400, "is required"},
		{"wrong content type", "POST", "/v1/topics/t/messages", "text/plain", `{"data": "x"}`, 415, "application/json"},
		{"no content type", "POST", "/v1/topics/t/messages", "none", `{"data": "x"}`, 415, "application/json"},
		{"json with charset", "POST", "/v1/topics/t/messages", "application/json; charset=utf-8", `{"data": "x"}`, 409, "no peer in topic"},
		{"body too large", "POST", "/v1/topics/t/messages", "", `{"data": "` + strings.Repeat("x", 5000) + `"}`, 413, "larger than 4096"},
		{"no peer in topic", "POST", "/v1/topics/t/messages", "", `{"data": "x"}`, 409, "no peer in topic"},
		{"bad peer id", "POST", "/v1/peers/nobody/messages", "", `{"protocol": "echo/1", "data": "x"}`, 400, "peer id"},
		{"missing protocol", "POST", peerURL[len(srv.URL):], "", `{"data": "x"}`, 400, `"protocol" is required`},
		{"negative timeout", "POST", peerURL[len(srv.URL):], "", `{"protocol": "p", "data": "x", "timeout_ms": -1}`, 400, "timeout_ms"},
		// Its address unknown, and no peer to look it up through (a peer the DHT does not find: 404, below).
		{"unknown peer", "POST", peerURL[len(srv.URL):], "", `{"protocol": "echo/1", "data": "x", "timeout_ms": 3000}`, 503, "no known peers"},
		{"unknown endpoint", "GET", "/v1/nothing", "", "", 404, "no endpoint /v1/nothing"},
		// A topic no node can have, as for POST (both answered 200 {"joined": false}).
		{"topic too long", "GET", "/v1/topics/" + strings.Repeat("t", 300), "", "", 400, "topic name too long"},
		{"topic not UTF-8", "GET", "/v1/topics/%ff", "", "", 400, "not valid UTF-8"},
		{"wrong method", "DELETE", "/v1/peers", "", "", 405, "use GET"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ct := c.contentType // a POST's is JSON unless the case says otherwise ("none": no header)
			switch {
			case ct == "none":
				ct = ""
			case ct == "" && c.method == "POST":
				ct = "application/json"
			}
			status, body := call(t, c.method, srv.URL+c.path, ct, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d; body %s", status, c.status, body)
			}
			if c.message == "" {
				return
			}
			var e adminapi.Error
			if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, c.message) {
				t.Fatalf("body %s: want a JSON error mentioning %q", body, c.message)
			}
		})
	}
}

func TestPublishStreamAndSendThroughTheAPI(t *testing.T) {
	ctx, a, b := connectedPair(t, true)
	apiA, apiB := serve(t, a), serve(t, b)

	// Stream the topic from b; the first comment line says the subscription is in place.
	req, _ := http.NewRequestWithContext(ctx, "GET", apiB.URL+"/v1/topics/news/messages", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %q", resp.StatusCode, ct)
	}
	events := bufio.NewReader(resp.Body)
	if line, err := events.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": subscribed") {
		t.Fatalf("first stream line %q, %v", line, err)
	}
	// a must see b in the topic before it can publish; it subscribes too, as a publisher does.
	if _, err := a.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	status, body := call(t, "POST", apiA.URL+"/v1/topics/news/messages", "application/json", `{"data": "hello world"}`)
	if status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, body)
	}
	var pub adminapi.PublishResponse
	if err := json.Unmarshal([]byte(body), &pub); err != nil || pub.ID == "" {
		t.Fatalf("publish answer %s", body)
	}
	msg := nextEvent(t, events)
	if msg.ID != pub.ID || msg.Data == nil || *msg.Data != "hello world" || msg.Origin != a.ID().String() || msg.Hops != 1 {
		t.Fatalf("streamed %+v, want the published message from a, 1 hop", msg)
	}

	// A request to b's echo protocol through a's API returns the reply.
	status, body = call(t, "POST", apiA.URL+"/v1/peers/"+b.ID().String()+"/messages", "application/json",
		`{"protocol": "echo/1", "data": "ping", "request": true}`)
	var sent adminapi.SendResponse
	if status != 200 || json.Unmarshal([]byte(body), &sent) != nil || sent.Reply == nil || *sent.Reply.Data != "ping" {
		t.Fatalf("request: %d %s", status, body)
	}
	// A request to a protocol b does not serve is a 404 with the remote's reason.
	status, body = call(t, "POST", apiA.URL+"/v1/peers/"+b.ID().String()+"/messages", "application/json",
		`{"protocol": "nothing/1", "data": "ping", "request": true}`)
	if status != http.StatusNotFound || !strings.Contains(body, "no protocol") {
		t.Fatalf("request to an unknown protocol: %d %s", status, body)
	}

	// Read endpoints answer with JSON.
	for _, path := range []string{"/v1/self", "/v1/status", "/v1/peers", "/v1/routing", "/v1/topics", "/v1/topics/news"} {
		status, body := call(t, "GET", apiB.URL+path, "", "")
		if status != 200 || !json.Valid([]byte(body)) {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
	}
	var peers []adminapi.Peer
	_, body = call(t, "GET", apiB.URL+"/v1/peers", "", "")
	if err := json.Unmarshal([]byte(body), &peers); err != nil || len(peers) != 1 || peers[0].ID != a.ID().String() ||
		peers[0].RekeyInterval != session.DefaultRekeyInterval {
		t.Errorf("b's peers: %s (want a's, rekey_interval %d)", body, session.DefaultRekeyInterval)
	}
}

// GET /v1/peers says when a peer last relayed a message first: node 1 relays node 0's publication to node 2.
func TestPeersShowWhenAPeerLastRelayed(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	nw.Connect(0, 1)
	nw.Connect(1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range nw.Nodes {
		if _, err := n.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Nodes[1].WaitTopicPeers(ctx, "news", 2); err != nil {
		t.Fatal(err)
	}
	if err := nw.Nodes[0].WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := nw.Nodes[0].Publish(ctx, "news", wrapperspb.String("hello")); err != nil {
		t.Fatal(err)
	}
	api := serve(t, nw.Nodes[2])
	var peers []adminapi.Peer
	testkit.WaitFor(t, 10*time.Second, func() bool {
		_, body := call(t, "GET", api.URL+"/v1/peers", "", "")
		return json.Unmarshal([]byte(body), &peers) == nil && len(peers) == 1 && peers[0].LastRelayed != nil
	}, "node 2's peers to show when node 1 last relayed")
}

// nextEvent reads the stream up to the next "message" event.
func nextEvent(t *testing.T, r *bufio.Reader) adminapi.Message {
	t.Helper()
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "message":
			var m adminapi.Message
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
				t.Fatalf("event data %q: %v", line, err)
			}
			return m
		}
	}
}

// connectedPair starts two nodes, a connected to b (which serves echo/1 with echo set), and returns a context for
// the test's calls (20 s) with them.
func connectedPair(t *testing.T, echo bool) (context.Context, *actors.Node, *actors.Node) {
	t.Helper()
	nw := testkit.NewNetwork(t, 2)
	a, b := nw.Nodes[0], nw.Nodes[1]
	if echo {
		if _, err := b.Register("echo/1", actor.PropsFromFunc(func(ctx actor.Context) {
			if in, ok := ctx.Message().(*actors.Inbound); ok && in.IsRequest() {
				_ = in.Reply(in.Payload)
			}
		})); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		t.Fatal(err)
	}
	return ctx, a, b
}

// An API mounted on a node that is not started answers 503, as for a closed node: it answered 500.
func TestAPIOfANodeNotStartedAnswers503(t *testing.T) {
	cfg := actors.DefaultConfig()
	cfg.DisableDiscovery = true
	node, err := actors.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	srv := serve(t, node)
	if code, body := call(t, "POST", srv.URL+"/v1/topics/t/messages", "application/json", `{"data": "x"}`); code != http.StatusServiceUnavailable {
		t.Fatalf("publish through the API of a node not started: %d %s, want 503", code, body)
	}
}

// GET /v1/topics/{topic}/registered lists the nodes registered on a topic in the DHT: here the one member of a
// topic its node's relay registered.
func TestRegisteredListsATopicsRegisteredNodes(t *testing.T) {
	nw := testkit.NewNetwork(t, 3, testkit.WithBootnode(), testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.Bootstrap.Interval = 50 * time.Millisecond
		cfg.Gossip.Router.TopicSearchInterval = 200 * time.Millisecond
	}))
	member, asker := nw.Nodes[1], nw.Nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := member.Subscribe(ctx, "rare", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, asker)
	want := adminapi.Registered{ID: member.ID().String(), Addr: member.Addr().Addr}
	testkit.WaitFor(t, 15*time.Second, func() bool {
		code, body := call(t, "GET", srv.URL+"/v1/topics/rare/registered", "", "")
		var got []adminapi.Registered
		return code == 200 && json.Unmarshal([]byte(body), &got) == nil && len(got) == 1 && got[0] == want
	}, "the asker's API to list the member %s", member.ID().Short())
	// The polling above spent the others' FindNode rate (20/s per peer): until their limiters let a request through
	// again, their "overloaded" answers are no answer, and the lookup fails with routing.ErrNoAnswer (503).
	testkit.WaitFor(t, 5*time.Second, func() bool {
		code, body := call(t, "GET", srv.URL+"/v1/topics/nobody/registered", "", "")
		return code == 200 && strings.TrimSpace(body) == "[]"
	}, "a topic nobody joined to be 200 []")
	alone := testkit.NewNetwork(t, 1).Nodes[0]
	if code, body := call(t, "GET", serve(t, alone).URL+"/v1/topics/rare/registered", "", ""); code != 503 || !strings.Contains(body, "no known peers") {
		t.Fatalf("a node that knows nobody: %d %s, want 503", code, body)
	}
}
