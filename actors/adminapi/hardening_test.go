package adminapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/testkit"
)

// stallConn records how long its current Write has been blocked.
type stallConn struct {
	net.Conn
	writeSince atomic.Int64 // unix nanos of the Write in progress, 0 when none
}

func (c *stallConn) Write(b []byte) (int, error) {
	c.writeSince.Store(time.Now().UnixNano())
	defer c.writeSince.Store(0)
	return c.Conn.Write(b)
}

type stallListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*stallConn
}

func (l *stallListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	sc := &stallConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, sc)
	l.mu.Unlock()
	return sc, nil
}

func (l *stallListener) blockedFor(d time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		if s := c.writeSince.Load(); s != 0 && time.Since(time.Unix(0, s)) > d {
			return true
		}
	}
	return false
}

// A stream client that stops reading keeps its handler in a Write until Close, which interrupts it: Close used to
// wait for that handler for good, and `node run` calls it first on SIGTERM, so the node never shut down (nor saved
// its peer store).
func TestStalledStreamClientDoesNotBlockClose(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0]
	api := adminapi.New(node, adminapi.Config{StreamKeepalive: 50 * time.Microsecond, WriteTimeout: time.Hour})
	srv := httptest.NewUnstartedServer(api)
	ln := &stallListener{Listener: srv.Listener}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	d := net.Dialer{}
	conn, err := d.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	defer conn.Close() // unblocks the handler at the end of the test
	if _, err := fmt.Fprintf(conn, "GET /v1/topics/news/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Never read: wait until the handler has been stuck in a Write for a second.
	testkit.WaitFor(t, 30*time.Second, func() bool { return ln.blockedFor(time.Second) },
		"the stream handler to block on a full socket")

	closed := make(chan struct{})
	go func() { api.Close(); close(closed) }()
	err = testkit.Poll(context.Background(), 5*time.Second, func() bool {
		select {
		case <-closed:
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Errorf("API.Close has not returned 5s after it was called: a stalled stream client blocks shutdown")
	}
	conn.Close()
	<-closed
}

// A client that sends a request and never reads the reply holds the handler only for WriteTimeout: a reply larger
// than the sockets' buffers (here a 404 that quotes a 512 KiB path) used to block it until the client went away,
// and the node's shutdown with it.
func TestClientThatDoesNotReadAReplyIsDropped(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0]
	api := adminapi.New(node, adminapi.Config{WriteTimeout: 300 * time.Millisecond})
	var handled atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.ServeHTTP(w, r)
		handled.Store(true)
	}))
	srv.Listener = &stallListener{Listener: srv.Listener}
	srv.Start()
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	defer conn.Close()
	path := "/" + strings.Repeat("x", 512<<10)
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, handled.Load, "the handler of a reply nobody reads to return")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.Copy(io.Discard, conn)
	if got >= int64(len(path)) {
		t.Errorf("the client read %d bytes, the whole reply: the write was not cut, so the test proves nothing", got)
	}
}

// A topic name over the relay's MaxTopicLength (256 bytes), or one that is not UTF-8 (%FF unescapes to a byte no
// protobuf string may carry), is the client's error: 400, where it was 500 (and a subscription that broke the
// node's hello to every peer).
func TestOverlongTopicIsAClientError(t *testing.T) {
	nw := testkit.NewNetwork(t, 1)
	srv := serve(t, nw.Nodes[0])
	long := strings.Repeat("t", 300)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/topics/" + long + "/messages", `{"data": "x"}`},
		{"GET", "/v1/topics/" + long + "/messages", ""},
		{"POST", "/v1/topics/%FF%FE/messages", `{"data": "x"}`},
		{"GET", "/v1/topics/%FF%FE/messages", ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, c.method, srv.URL+c.path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var e adminapi.Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s...: status %d (%q), want 400", c.method, c.path[:20], resp.StatusCode, e.Error)
		}
	}
}

// Publishing the same payload twice on a topic (message ids hash topic and payload) is a conflict, 409, where it
// was a server error.
func TestRepublishingIsAConflict(t *testing.T) {
	ctx, a, b := connectedPair(t, false)
	for _, n := range []*actors.Node{a, b} {
		if _, err := n.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, a)
	status, body := call(t, "POST", srv.URL+"/v1/topics/news/messages", "application/json", `{"data": "hello"}`)
	if status != http.StatusCreated {
		t.Fatalf("first publish: %d %s", status, body)
	}
	status, body = call(t, "POST", srv.URL+"/v1/topics/news/messages", "application/json", `{"data": "hello"}`)
	if status != http.StatusConflict || !strings.Contains(body, "already seen") {
		t.Errorf("second publish of the same payload: %d %s; want 409 saying it was already published", status, body)
	}
}

// A timeout_ms over 10 minutes is refused with 400: it used to overflow time.Duration into a negative, and a request
// to a live echo protocol "timed out" at once with 504.
func TestOutOfRangeTimeoutIsRefused(t *testing.T) {
	_, a, b := connectedPair(t, true)
	srv := serve(t, a)
	url := srv.URL + "/v1/peers/" + b.ID().String() + "/messages"
	status, body := call(t, "POST", url, "application/json", `{"protocol": "echo/1", "data": "x", "request": true, "timeout_ms": 5000}`)
	if status != http.StatusOK {
		t.Fatalf("control request: %d %s", status, body)
	}
	status, body = call(t, "POST", url, "application/json", `{"protocol": "echo/1", "data": "x", "request": true, "timeout_ms": 9300000000000}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "timeout_ms") {
		t.Errorf("timeout_ms 9.3e12: %d %s; want 400 for an out-of-range timeout", status, body)
	}
}

// A web page the operator visits cannot use the loopback API: a fetch(..., {mode: "no-cors", body: new Blob([json])})
// carries no Content-Type (a CORS "simple request", sent without preflight) and crosses sites; and DNS rebinding
// (evil.example resolving to 127.0.0.1) gets a Host that is not loopback. Both used to be served.
func TestBrowserCrossSiteRequestsAreRefused(t *testing.T) {
	ctx, a, b := connectedPair(t, false)
	srv := serve(t, a)

	// What a browser sends for the no-cors fetch above, from a page on https://evil.example.
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/peers/"+b.ID().String()+"/messages",
		strings.NewReader(`{"protocol": "echo/1", "data": "sent by a web page"}`))
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "no-cors")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site browser POST without Content-Type: %d; want 403", resp.StatusCode)
	}
	// Without the browser's headers, the missing Content-Type alone is refused.
	if status, body := call(t, "POST", srv.URL+"/v1/peers/"+b.ID().String()+"/messages", "",
		`{"protocol": "echo/1", "data": "x"}`); status != http.StatusUnsupportedMediaType {
		t.Errorf("POST without Content-Type: %d %s; want 415", status, body)
	}

	// DNS rebinding: same origin for the browser, Host names the attacker's domain.
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/peers", nil)
	req.Host = "evil.example:31700"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET /v1/peers with Host evil.example: %d; want 403", resp.StatusCode)
	}
	// A page of another site on the same domain, and a page of another origin (another port) on this host.
	for name, header := range map[string][2]string{
		"same-site":           {"Sec-Fetch-Site", "same-site"},
		"another port's page": {"Origin", "http://127.0.0.1:1"},
	} {
		req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/peers", nil)
		req.Header.Set(header[0], header[1])
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET /v1/peers from %s: %d; want 403", name, resp.StatusCode)
		}
	}
	// The API's own origin, localhost (in any case), a loopback address (IPv4-mapped too), and any host with
	// Config.Remote are served.
	for _, c := range []struct {
		host, origin string
		remote       bool
	}{{"", srv.URL, false}, {"localhost:31700", "", false}, {"LocalHost:31700", "", false},
		{"[::ffff:127.0.0.1]:31700", "", false}, {"[::1]:31700", "", false}, {"node.example:31700", "", true}} {
		api := adminapi.New(a, adminapi.Config{Remote: c.remote})
		s := httptest.NewServer(api)
		req, _ = http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/self", nil)
		if c.host != "" {
			req.Host = c.host
		}
		if c.origin != "" {
			req.Header.Set("Origin", s.URL)
		}
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		api.Close()
		s.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/self, Host %q, Origin %v, remote %v: %d, want 200", c.host, c.origin != "", c.remote, resp.StatusCode)
		}
	}
}

// A stream client that reads too slowly holds at most StreamBufferBytes of queued payloads, whatever their count:
// the rest are dropped and the client told how many. Bounded by count alone, 256 messages of 1 MiB could pile up.
func TestStalledStreamHoldsAtMostItsByteBudget(t *testing.T) {
	ctx, a, b := connectedPair(t, false)
	if _, err := b.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	const budget = 16 << 10
	api := adminapi.New(a, adminapi.Config{StreamBufferBytes: budget, WriteTimeout: time.Hour})
	srv := httptest.NewUnstartedServer(api)
	ln := &stallListener{Listener: srv.Listener}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { api.Close(); srv.Close() })
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := fmt.Fprintf(conn, "GET /v1/topics/news/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	// Until the handler blocks on the full socket, then 64 more of 4 KiB: 256 KiB against a budget of 16 KiB.
	filler := strings.Repeat("x", 4<<10)
	n := 0
	publish := func() {
		t.Helper()
		if _, err := a.Publish(ctx, "news", wrapperspb.String(fmt.Sprintf("%d %s", n, filler))); err != nil {
			t.Fatal(err)
		}
		n++
	}
	// Another subscription of a's tells when a has handed its subscriptions every publication: the stream's,
	// handed them at the same time, must have counted them all before the client reads again.
	var handed atomic.Int64
	if _, err := a.Subscribe(ctx, "news", func(*gossip.Delivery) { handed.Add(1) }); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, func() bool { publish(); return ln.blockedFor(200 * time.Millisecond) },
		"the stream handler to block on a full socket")
	for range 64 {
		publish()
	}
	testkit.WaitFor(t, 10*time.Second, func() bool { return handed.Load() >= int64(n) }, "a to hand out its %d publications", n)
	// Now read it all: the messages the budget held, each drop counted in a dropped event before the next message
	// written. A marker published once the first is read comes out after every drop of the 64 was told (it always
	// fits: the budget holds whole messages of 4 KiB).
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	dropped, marked := 0, false
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), `data: {"dropped":`); ok {
			d, _ := strconv.Atoi(strings.TrimSuffix(v, "}"))
			dropped += d
			if !marked {
				if _, err := a.Publish(ctx, "news", wrapperspb.String("marker")); err != nil {
					t.Fatal(err)
				}
				marked = true
			}
			continue
		}
		if marked && strings.Contains(sc.Text(), `"data":"marker"`) {
			break
		}
	}
	if !marked {
		t.Fatalf("no dropped event (%v)", sc.Err())
	}
	if queued := 64 - dropped; queued*len(filler) > budget+len(filler) {
		t.Fatalf("%d of 64 messages dropped: %d queued, over the budget of %d bytes", dropped, queued, budget)
	}
}

// A stream ends, with an "end" event, when its subscription does (the node closed): it used to go on sending
// keepalives, and a client never learned that no message would come. And when the API closes (node run stops
// with its node): the stream was cut, and `node subscribe` failed with "unexpected EOF".
func TestStreamEndsWhenTheNodeCloses(t *testing.T) {
	for _, closing := range []string{"node", "API"} {
		t.Run(closing, func(t *testing.T) {
			node := testkit.NewNetwork(t, 1).Nodes[0]
			api := adminapi.New(node, adminapi.Config{StreamKeepalive: 50 * time.Millisecond})
			srv := httptest.NewServer(api)
			defer srv.Close()
			defer api.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp := openStream(ctx, t, srv.URL, "t")
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": subscribed") {
				t.Fatalf("first line %q, %v", line, err)
			}
			if closing == "node" {
				_ = node.Close()
			} else {
				go api.Close() // it waits for the stream to end
			}
			var events []string
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					if ctx.Err() != nil {
						t.Fatalf("the stream was still open 10 s after the %s closed", closing)
					}
					break // the server ended the stream
				}
				if ev, ok := strings.CutPrefix(strings.TrimSpace(line), "event: "); ok {
					events = append(events, ev)
				}
			}
			if len(events) == 0 || events[len(events)-1] != "end" {
				t.Fatalf("events after the %s closed: %v, want an end event last", closing, events)
			}
		})
	}
}

// At most MaxStreams streams are open at once, each a subscription with its own buffer: one more gets 503, and a
// stream that ends gives its place back. Unbounded, a remote API (--api-remote) let clients open any number.
func TestStreamsAreBoundedByMaxStreams(t *testing.T) {
	node := testkit.NewNetwork(t, 1).Nodes[0]
	api := adminapi.New(node, adminapi.Config{MaxStreams: 2})
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer api.Close()
	open := func(ctx context.Context) *http.Response { t.Helper(); return openStream(ctx, t, srv.URL, "t") }
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	for range 2 {
		resp := open(ctx1)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream within MaxStreams: %d, want 200", resp.StatusCode)
		}
	}
	resp := open(context.Background())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "too many streams") {
		t.Fatalf("a third stream: %d %s, want 503 too many streams", resp.StatusCode, body)
	}
	cancel1() // both clients leave
	testkit.WaitFor(t, 5*time.Second, func() bool {
		resp := open(context.Background())
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "a stream once the others ended")
}

// openStream opens the stream of topic on the API at base until ctx ends; the caller closes the body.
func openStream(ctx context.Context, t *testing.T, base, topic string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/topics/"+topic+"/messages", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A send to a peer's protocol actor that stays behind answers 503 once its timeout passes, and nothing is sent: the
// peer's flow-control window for the protocol (one message here) stays closed.
func TestSendToABehindProtocolIsUnavailable(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(i int, cfg *actors.Config) {
		cfg.DisableDiscovery = true
		if i == 1 {
			cfg.InboundPending = 2 // a window of one message per protocol
		}
	}))
	a, b := nw.Nodes[0], nw.Nodes[1]
	testkit.RegisterStalled(t, b, "slow/1")
	nw.Connect(0, 1)
	url := serve(t, a).URL + "/v1/peers/" + b.ID().String() + "/messages"
	if code, body := call(t, "POST", url, "application/json", `{"protocol": "slow/1", "data": "1"}`); code != http.StatusAccepted {
		t.Fatalf("first send: %d %s", code, body)
	}
	code, body := call(t, "POST", url, "application/json", `{"protocol": "slow/1", "data": "2", "timeout_ms": 200}`)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no room") {
		t.Fatalf("send to the behind actor: %d %s, want 503", code, body)
	}
}

// A stream asked for once the API's Close has begun is refused (503), not opened to end at once: a stream counted
// in after Close's wait would run unwaited.
func TestAStreamAfterCloseIs503(t *testing.T) {
	_, a, _ := connectedPair(t, false)
	api := adminapi.New(a, adminapi.Config{})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	api.Close()
	if status, body := call(t, "GET", srv.URL+"/v1/topics/news/messages", "", ""); status != http.StatusServiceUnavailable {
		t.Fatalf("a stream after Close: %d %s, want 503", status, body)
	}
}
