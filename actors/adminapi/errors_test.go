package adminapi_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// The client's mistakes are 4xx, a peer that cannot be dialed 502, as OPERATOR.md says (stop 51's audit: a protocol
// id over the limit and a dial refused were 500, logged as server failures).
func TestClientMistakesAndUnreachablePeersAreNot500(t *testing.T) {
	_, a, b := connectedPair(t, true)
	srv := serve(t, a)
	body := `{"protocol": "` + strings.Repeat("p", actors.MaxProtocolIDLength+1) + `", "data": "x"}`
	if code, resp := call(t, "POST", srv.URL+"/v1/peers/"+b.ID().String()+"/messages", "application/json", body); code != 400 {
		t.Errorf("a protocol id over the limit: %d %s, want 400", code, resp)
	}
	for _, body := range []string{`{"data": "x"}}`, `{"data": "x"}]]]`, `{"data": "x"} {}`} {
		if code, resp := call(t, "POST", srv.URL+"/v1/topics/t/messages", "application/json", body); code != 400 {
			t.Errorf("body %q: %d %s, want 400 (malformed JSON)", body, code, resp)
		}
	}

	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	c, gone := nw.Nodes[0], nw.Nodes[1]
	nw.Connect(0, 1)
	csrv := serve(t, c)
	_ = gone.Close()
	testkit.WaitFor(t, 5*time.Second, func() bool { return len(c.Peers()) == 0 }, "the peer's connection to close")
	for _, req := range []string{"false", "true"} {
		code, resp := call(t, "POST", csrv.URL+"/v1/peers/"+gone.ID().String()+"/messages", "application/json",
			`{"protocol": "echo/1", "data": "x", "timeout_ms": 3000, "request": `+req+`}`)
		if code != http.StatusBadGateway {
			t.Errorf("request=%s to a peer that cannot be dialed: %d %s, want 502", req, code, resp)
		}
	}
}

// A topic name is quoted in the stream's first comment line: a newline in it made the server send a forged event.
func TestATopicNameCannotForgeStreamEvents(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0]
	srv := serve(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp := openStream(ctx, t, srv.URL, url.PathEscape("x\n\nevent: end\ndata: {\"reason\":\"forged\"}"))
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || first != `: subscribed to "x\n\nevent: end\ndata: {\"reason\":\"forged\"}"`+"\n" {
		t.Fatalf("first line %q, %v; want the name quoted on one comment line", first, err)
	}
}

// A client that leaves during a request is not logged as a failure of the server (it was a warn with status 500).
func TestAClientThatLeftIsNotAServerFailure(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	testkit.RegisterStalled(t, b, "slow/1")
	nw.Connect(0, 1)
	var logs testkit.SyncBuffer
	api := adminapi.New(a, adminapi.Config{Logger: zerolog.New(&logs)})
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer api.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/peers/"+b.ID().String()+"/messages",
		strings.NewReader(`{"protocol": "slow/1", "data": "x", "request": true}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("the request was answered before its client left")
	}
	testkit.WaitFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "admin API request failed") }, "the failure's log line")
	if line := logs.String(); strings.Contains(line, `"level":"warn"`) {
		t.Fatalf("a client that left is logged as a server failure: %s", line)
	}
}

// A send to a peer whose address is unknown, from a node that knows no peer to look it up through, is 503, as
// OPERATOR.md says and GET /v1/topics/{topic}/registered answers: it was 404, since the lookup's routing.ErrNoPeers
// comes wrapped in ErrUnknownPeer (an audit's finding).
func TestASendWithNoPeerToLookUpThroughIs503(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0] // discovery on, no peer at all
	srv := serve(t, node)
	unknown, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{"false", "true"} {
		code, resp := call(t, "POST", srv.URL+"/v1/peers/"+unknown.NodeID().String()+"/messages", "application/json",
			`{"protocol": "echo/1", "data": "x", "timeout_ms": 3000, "request": `+req+`}`)
		if code != http.StatusServiceUnavailable {
			t.Errorf("request=%s with no peer to look the peer up through: %d %s, want 503", req, code, resp)
		}
	}
	// With a peer to ask, the DHT does not find it: 404.
	nw := testkit.NewNetwork(t, 2)
	nw.Connect(0, 1)
	asker := serve(t, nw.Nodes[0])
	code, resp := call(t, "POST", asker.URL+"/v1/peers/"+unknown.NodeID().String()+"/messages", "application/json",
		`{"protocol": "echo/1", "data": "x", "timeout_ms": 3000}`)
	if code != http.StatusNotFound {
		t.Errorf("a peer the DHT does not find: %d %s, want 404", code, resp)
	}
}

// A topic named . or .. cannot be a path segment: the mux cleaned the path and redirected, to another endpoint
// (GET /v1/topics/./registered answered for a topic named "registered"; an audit's finding). It is a 400.
func TestADotSegmentIsRefusedNotRedirected(t *testing.T) {
	srv := serve(t, testkit.NewNetwork(t, 1).Nodes[0])
	for _, path := range []string{"/v1/topics/./registered", "/v1/topics/../v1/status", "/v1/topics/.", "/v1/topics/./messages"} {
		for _, method := range []string{"GET", "POST"} {
			code, resp := call(t, method, srv.URL+path, "application/json", `{"data": "x"}`)
			if code != http.StatusBadRequest || !strings.Contains(resp, "not served by the admin API") {
				t.Errorf("%s %s: %d %s, want 400", method, path, code, resp)
			}
		}
	}
}

// An empty path segment (a topic name left empty: /v1/topics//messages) is refused, as . and .. are: the mux
// cleaned the path and redirected, to another endpoint (GET /v1/topics//registered answered 307 to the topic
// named "registered", and a client that follows redirects got that topic's info; an audit's finding).
func TestAnEmptyPathSegmentIsRefusedNotRedirected(t *testing.T) {
	srv := serve(t, testkit.NewNetwork(t, 1).Nodes[0])
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/v1/topics//registered", "/v1/topics//messages", "/v1//self", "//v1/status",
		"/v1/topics/t//messages"} {
		for _, method := range []string{"GET", "POST"} {
			req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"data": "x"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "empty path segment") {
				t.Errorf("%s %s: %d %s (Location %q), want 400", method, path, resp.StatusCode, body, resp.Header.Get("Location"))
			}
		}
	}
	// A topic holding slashes, escaped, is a topic like another: the mux does not clean it.
	if code, body := call(t, "POST", srv.URL+"/v1/topics/a%2F%2Fb/messages", "application/json", `{"data": "x"}`); code != http.StatusConflict {
		t.Errorf("publish on the topic a//b: %d %s, want 409 (no peer in the topic)", code, body)
	}
}
