package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/testkit"
)

// An admin API client that opens the topic stream and then stops reading does not keep `node run` from shutting
// down: its stream handler, blocked writing to the full socket, is interrupted when the API closes. It used to
// hold API.Close, which runNode calls first, for good: no shutdown, no peer store written.
func TestStalledSubscriberDoesNotBlockShutdown(t *testing.T) {
	common := []string{"--listen", "127.0.0.1:0", "--topic", "news", "--log-format", "json"}
	a := startInProcess(t, append([]string{"--api", "off"}, common...)...)
	addrA := a.listening(t)
	b := startInProcess(t, append([]string{"--api", "127.0.0.1:0", "--bootnode", addrA.String(),
		"--data-dir", t.TempDir()}, common...)...)
	b.listening(t)
	api := b.apiAddr(t)

	conn, err := net.Dial("tcp", api)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	t.Cleanup(func() { conn.Close() }) // runs before startInProcess's cleanups, so they can finish
	if _, err := fmt.Fprintf(conn, "GET /v1/topics/news/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Publish ~16 MB through B's own API: B delivers its own publications to the stream, whose client never reads.
	filler := strings.Repeat("x", 400<<10)
	published, last := 0, ""
	testkit.WaitFor(t, 60*time.Second, func() bool {
		resp, err := http.Post("http://"+api+"/v1/topics/news/messages", "application/json", strings.NewReader(fmt.Sprintf(`{"data": "%d %s"}`, published, filler)))
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			published++
		} else {
			last = fmt.Sprintf("%d %s", resp.StatusCode, rb)
		}
		return published >= 40
	}, "40 publications through B (%s)", lazy(func() string { return fmt.Sprintf("%d done, last failure %.200s", published, last) }))

	b.cancel() // what SIGTERM does
	err = testkit.Poll(context.Background(), 10*time.Second, func() bool {
		select {
		case code := <-b.exited:
			b.exited <- code
			return true
		default:
			return false
		}
	})
	if err != nil {
		t.Fatalf("node run still running 10s after its context ended, held by a stream client that stopped reading; "+
			"stderr tail:\n%s", tail(b.stderr.String(), 600))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

type lazy func() string

func (f lazy) String() string { return f() }

// A bad flag value exits 2 before the node starts, as OPERATOR.md says: these were checked only when used, and
// exited 1 (some after the node printed its "listening" line).
func TestBadFlagValuesExitWithUsageCode(t *testing.T) {
	for _, args := range [][]string{
		{"--topic", strings.Repeat("t", 300)},
		manyTopics(65), // past gossip.Config.MaxPeerTopics: the node's Subscribe would refuse the 65th
		{"--api", "127.0.0.1:notaport"},
		{"--listen", "127.0.0.1:notaport"},
		{"--metrics", "127.0.0.1:99999"},
	} {
		full := append([]string{"run", "--listen", "127.0.0.1:0", "--api", "off", "--log-format", "json"}, args...)
		code, out, errOut := call(t, full...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d; stdout %q, stderr tail %q", args[:1], code, exitUsage, out, tail(errOut, 160))
		}
	}
}

// `node subscribe` (text mode) escapes the control characters of a publisher's payload: printed raw, a remote
// peer's message could carry terminal escape sequences (retitle the window, rewrite earlier lines) into the
// operator's terminal.
func TestSubscribePrintsNoTerminalControls(t *testing.T) {
	var out strings.Builder
	data := `{"topic":"news","id":"00","origin":"x","data":"\u001b]0;pwned\u0007\u001b[2Jhello"}`
	if err := printMessage(&out, data, false); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") || !strings.Contains(out.String(), `\x1b]0;pwned\a\x1b[2Jhello`) {
		t.Errorf("printed %q: want the payload's control characters escaped", out.String())
	}
}

// A payload file or a config file that never ends (/dev/zero) is refused once past its bound, instead of being read
// until memory runs out.
func TestEndlessFilesAreRefused(t *testing.T) {
	if _, _, err := payloadArg("@/dev/zero", nil); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("payload @/dev/zero: %v, want a size error", err)
	}
	code, _, errOut := call(t, "run", "--config", "/dev/zero", "--listen", "127.0.0.1:0", "--api", "off")
	if code != exitUsage || !strings.Contains(errOut, "more than") {
		t.Errorf("--config /dev/zero: exit %d, stderr %q; want %d and a size error", code, tail(errOut, 200), exitUsage)
	}
}

// `node subscribe` gives up on a node whose stream sends nothing, not even keepalives, for the silence allowed,
// instead of waiting for good.
func TestSubscribeGivesUpOnASilentNode(t *testing.T) {
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, ": subscribed to news\n\n")
		w.(http.Flusher).Flush()
		select { // then nothing
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hold)
	o := &clientOptions{api: srv.URL, silence: 200 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := o.subscribe(ctx, "news", 0, io.Discard, io.Discard)
	if !errors.Is(err, errSilent) || ctx.Err() != nil {
		t.Fatalf("subscribe to a silent node: %v (test context %v), want errSilent within the silence allowed", err, ctx.Err())
	}
}

// node send --request --timeout T reports the API's own answer when the peer does not answer in time (504): the
// client cut its HTTP call at exactly T, always first, and said the API could not be reached.
func TestSendTimeoutReportsTheAPIsAnswer(t *testing.T) {
	nw := testkit.NewNetwork(t, 2, testkit.WithConfig(func(_ int, cfg *actors.Config) { cfg.DisableDiscovery = true }))
	a, b := nw.Nodes[0], nw.Nodes[1]
	testkit.RegisterStalled(t, b, "slow/1")
	nw.Connect(0, 1)
	api := adminapi.New(a, adminapi.Config{})
	srv := httptest.NewServer(api)
	defer srv.Close()
	defer api.Close()
	code, _, errOut := call(t, "send", b.ID().String(), "slow/1", "x", "--request", "--timeout", "300ms", "--api", srv.URL)
	if code != 1 || !strings.Contains(errOut, "HTTP 504") || strings.Contains(errOut, "cannot reach") {
		t.Fatalf("exit %d, stderr %q; want 1 and the API's 504", code, errOut)
	}
}

// node topic-peers prints the addresses of other nodes' records with their control characters escaped: a hostile
// node's address could reset the terminal or forge lines of output.
func TestTopicPeersEscapesAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]adminapi.Registered{{ID: strings.Repeat("ab", 32), Addr: "[fe80::1%\x1bc\nforged]:30700"}})
	}))
	defer srv.Close()
	code, out, errOut := call(t, "topic-peers", "t", "--api", srv.URL)
	if code != 0 || strings.ContainsAny(out, "\x1b") || strings.Count(out, "\n") != 2 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the address escaped on one line", code, out, errOut)
	}
}

// manyTopics returns the flags of n distinct --topic values.
func manyTopics(n int) []string {
	var args []string
	for i := range n {
		args = append(args, "--topic", fmt.Sprint("t", i))
	}
	return args
}
