package adminapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// A body over MaxBodyBytes is a 413 however it is made: a value that ends within the limit followed by blanks
// past it was a 400 "more after the value" (an audit's finding), and a body of exactly the limit is read.
func TestABodyOverTheLimitIs413(t *testing.T) {
	srv := serve(t, testkit.NewNetwork(t, 1).Nodes[0]) // MaxBodyBytes 4096
	value := `{"data": "x"}`
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"a value then blanks past the limit", value + strings.Repeat(" ", 5000), 413},
		{"a value then newlines one past the limit", value + strings.Repeat("\n", 4097-len(value)), 413},
		{"a value then blanks to the limit", value + strings.Repeat(" ", 4096-len(value)), 409}, // no peer in the topic
	} {
		status, body := call(t, "POST", srv.URL+"/v1/topics/t/messages", "application/json", c.body)
		if status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
	}
}

// Each handler's checks of its body answer as OPERATOR.md says, at their bounds: timeout_ms up to 600000 is taken
// and one more refused, a protocol of blanks is missing, padded base64 is base64, and every error is a JSON body
// with its Content-Type.
func TestSendRequestsAreValidatedAtTheirBounds(t *testing.T) {
	_, a, b := connectedPair(t, true)
	srv := serve(t, a)
	url := srv.URL + "/v1/peers/" + b.ID().String() + "/messages"
	cases := []struct {
		name, body string
		status     int
		message    string
	}{
		{"timeout_ms at its bound", `{"protocol": "echo/1", "data": "x", "request": true, "timeout_ms": 600000}`, 200, ""},
		{"timeout_ms past its bound", `{"protocol": "echo/1", "data": "x", "request": true, "timeout_ms": 600001}`, 400, "timeout_ms"},
		{"timeout_ms not an integer", `{"protocol": "echo/1", "data": "x", "timeout_ms": 1.5}`, 400, "bad JSON body"},
		{"timeout_ms a string", `{"protocol": "echo/1", "data": "x", "timeout_ms": "10"}`, 400, "bad JSON body"},
		{"request not a boolean", `{"protocol": "echo/1", "data": "x", "request": "yes"}`, 400, "bad JSON body"},
		{"protocol of blanks", `{"protocol": " \t ", "data": "x"}`, 400, `"protocol" is required`},
		{"protocol not a string", `{"protocol": 1, "data": "x"}`, 400, "bad JSON body"},
		{"no body", ``, 400, "bad JSON body"},
		{"a null body", `null`, 400, `"protocol" is required`},
		{"an array body", `[]`, 400, "bad JSON body"},
		{"data not a string", `{"protocol": "echo/1", "data": 1}`, 400, "bad JSON body"},
		{"unpadded base64", `{"protocol": "echo/1", "data_base64": "aGk"}`, 400, "data_base64"},
		{"URL-safe base64", `{"protocol": "echo/1", "data_base64": "-_8="}`, 400, "data_base64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := call(t, "POST", url, "application/json", c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d; body %s", status, c.status, body)
			}
			if c.message != "" {
				var e adminapi.Error
				if err := json.Unmarshal([]byte(body), &e); err != nil || !strings.Contains(e.Error, c.message) {
					t.Fatalf("body %s: want a JSON error mentioning %q", body, c.message)
				}
			}
		})
	}
	// Padded base64 is the payload's bytes: the echo returns them ("hi").
	status, body := call(t, "POST", url, "application/json", `{"protocol": "echo/1", "data_base64": "aGk=", "request": true}`)
	var sent adminapi.SendResponse
	if status != 200 || json.Unmarshal([]byte(body), &sent) != nil || sent.Reply == nil || sent.Reply.Data == nil ||
		*sent.Reply.Data != "hi" {
		t.Fatalf("a request with data_base64 aGk=: %d %s, want the echo of \"hi\"", status, body)
	}
}

// A request's timeout_ms bounds its wait for the reply, not the API's RequestTimeout: a request to a protocol that
// never answers is a 504 once timeout_ms has passed.
func TestARequestsTimeoutIsItsOwn(t *testing.T) {
	_, a, b := connectedPair(t, false)
	testkit.RegisterStalled(t, b, "slow/1")
	api := adminapi.New(a, adminapi.Config{RequestTimeout: time.Hour})
	srv := httptest.NewServer(api)
	t.Cleanup(func() { api.Close(); srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/peers/"+b.ID().String()+"/messages",
		strings.NewReader(`{"protocol": "slow/1", "data": "x", "request": true, "timeout_ms": 300}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer within 20 s to a request of timeout_ms 300: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("a request to a protocol that never answers: %d, want 504", resp.StatusCode)
	}
}

// A known path with another method is a 405 whose Allow lists the methods the path takes, and every error reply
// is JSON (Content-Type application/json).
func TestWrongMethodsNameTheRightOnes(t *testing.T) {
	srv := serve(t, testkit.NewNetwork(t, 1).Nodes[0])
	peer := "/v1/peers/" + strings.Repeat("ab", 32) + "/messages"
	for _, c := range []struct{ method, path, allow string }{
		{"POST", "/v1/self", "GET"},
		{"PUT", "/v1/status", "GET"},
		{"DELETE", "/v1/topics/t/messages", "GET, POST"},
		{"PATCH", "/v1/topics/t", "GET"},
		{"GET", peer, "POST"},
		{"DELETE", peer, "POST"},
	} {
		req, err := http.NewRequest(c.method, srv.URL+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e adminapi.Error
		decodeErr := json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow ||
			resp.Header.Get("Content-Type") != "application/json" || decodeErr != nil || !strings.Contains(e.Error, "method not allowed") {
			t.Errorf("%s %s: %d, Allow %q, Content-Type %q, error %q (%v); want 405, Allow %q and a JSON error",
				c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), e.Error,
				decodeErr, c.allow)
		}
	}
}

// An embedder's handler that hides the writer's Flush gets a 500 for a stream, logged at warn as a server failure.
func TestAStreamWithoutFlushIsAServerFailure(t *testing.T) {
	var logs testkit.SyncBuffer
	api := adminapi.New(testkit.NewNetwork(t, 1).Nodes[0], adminapi.Config{Logger: zerolog.New(&logs)})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(struct{ http.ResponseWriter }{w}, r) // no Flush
	}))
	t.Cleanup(func() { api.Close(); srv.Close() })
	status, body := call(t, "GET", srv.URL+"/v1/topics/t/messages", "", "")
	if status != http.StatusInternalServerError || !strings.Contains(body, "streaming unsupported") {
		t.Fatalf("a stream through a writer without Flush: %d %s, want 500", status, body)
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), `"level":"warn"`) },
		"the 500 logged at warn (logs: %s)", &logs)
}

// A payload over the message size limit, published or sent, and a send to the node itself are the client's
// mistakes (400); a send to a peer the node banned is a 403, as OPERATOR.md says.
func TestOversizedPayloadsSelfSendsAndBannedPeers(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		cfg.MaxMessageSize = 64 << 10
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	nw.Connect(0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range []*actors.Node{a, b} {
		if _, err := n.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	api := adminapi.New(a, adminapi.Config{}) // bodies up to 1 MiB
	srv := httptest.NewServer(api)
	t.Cleanup(func() { api.Close(); srv.Close() })
	big := strings.Repeat("x", 100<<10)
	peer := func(id session.NodeID) string { return srv.URL + "/v1/peers/" + id.String() + "/messages" }
	for _, c := range []struct {
		name, url, body string
		status          int
		message         string
	}{
		{"a publication over the limit", srv.URL + "/v1/topics/news/messages", `{"data": "` + big + `"}`, 400, "too large"},
		{"a send over the limit", peer(b.ID()), `{"protocol": "echo/1", "data": "` + big + `"}`, 400, "maximum message size"},
		{"a send to the node itself", peer(a.ID()), `{"protocol": "echo/1", "data": "x"}`, 400, "itself"},
	} {
		status, body := call(t, "POST", c.url, "application/json", c.body)
		if status != c.status || !strings.Contains(body, c.message) {
			t.Errorf("%s: %d %.200s, want %d mentioning %q", c.name, status, body, c.status, c.message)
		}
	}
	if err := a.Ban(b.ID(), time.Minute, "test"); err != nil {
		t.Fatal(err)
	}
	// Right after the ban, its connection maybe not yet closing: the ban is in force once Ban returns (a send
	// went out over the connection and was answered 202, or met it closing and was answered 502).
	if status, body := call(t, "POST", peer(b.ID()), "application/json", `{"protocol": "echo/1", "data": "x"}`); status != http.StatusForbidden {
		t.Errorf("a send to a banned peer: %d %s, want 403", status, body)
	}
}

// A publication the node's own validator of the topic rejects or ignores is a 422 (nothing sent), and what a node
// without discovery cannot look up is a 501, for a topic's registered nodes and for a peer of unknown address.
func TestRefusedPublicationsAndLookupsWithoutDiscovery(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	nw.Connect(0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	verdicts := map[string]gossip.Verdict{"rejected": gossip.Reject, "ignored": gossip.Ignore}
	if _, err := a.Subscribe(ctx, "news", func(*gossip.Delivery) {}, gossip.WithValidator(func(_ context.Context, d *gossip.Delivery) gossip.Verdict {
		if v, ok := d.Payload.(*wrapperspb.BytesValue); ok {
			if verdict, ok := verdicts[string(v.GetValue())]; ok {
				return verdict
			}
		}
		return gossip.Accept
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, a)
	unknown, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, path, body string
		status                   int
	}{
		{"a publication the validator rejects", "POST", "/v1/topics/news/messages", `{"data": "rejected"}`, 422},
		{"a publication the validator ignores", "POST", "/v1/topics/news/messages", `{"data": "ignored"}`, 422},
		{"a publication it accepts", "POST", "/v1/topics/news/messages", `{"data": "accepted"}`, 201},
		{"a topic's registered nodes", "GET", "/v1/topics/news/registered", "", 501},
		{"a send to a peer of unknown address", "POST", "/v1/peers/" + unknown.NodeID().String() + "/messages", `{"protocol": "echo/1", "data": "x"}`, 501},
	} {
		if status, body := call(t, c.method, srv.URL+c.path, "application/json", c.body); status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
	}
}

// The API of a node that has closed answers 503 ("the node is stopping") on every endpoint that asks the node.
func TestAPIOfAClosedNodeAnswers503(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0]
	srv := serve(t, node)
	if err := node.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/routing", ""},
		{"GET", "/v1/topics", ""},
		{"GET", "/v1/topics/t", ""},
		{"GET", "/v1/topics/t/registered", ""},
		{"GET", "/v1/topics/t/messages", ""},
		{"POST", "/v1/topics/t/messages", `{"data": "x"}`},
		{"POST", "/v1/peers/" + strings.Repeat("ab", 32) + "/messages", `{"protocol": "echo/1", "data": "x"}`},
	} {
		if status, body := call(t, c.method, srv.URL+c.path, "application/json", c.body); status != http.StatusServiceUnavailable {
			t.Errorf("%s %s on a closed node: %d %s, want 503", c.method, c.path, status, body)
		}
	}
}
