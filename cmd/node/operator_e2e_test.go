package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/testkit"
)

// stdoutValue waits for the stdout line "<prefix> <value>" of a `node run` and returns value.
func (p *proc) stdoutValue(t *testing.T, prefix string) string {
	t.Helper()
	var value string
	testkit.WaitFor(t, 15*time.Second, func() bool {
		for _, line := range strings.Split(p.stdout.String(), "\n") {
			if v, ok := strings.CutPrefix(line, prefix+" "); ok {
				value = v
				return true
			}
		}
		return p.exited()
	}, "a %q line on the stdout of %q; stderr:\n%s", prefix, p.cmd.Args, &p.stderr)
	if value == "" {
		t.Fatalf("%q exited without a %q line; stderr:\n%s", p.cmd.Args, prefix, &p.stderr)
	}
	return value
}

// TestBinaryOperatorWalkthrough is the README's three-peer walkthrough as a test: A is the bootnode, B and C join
// through it; `node subscribe` on C receives what `node publish` sends through B; A's /metrics shows the traffic;
// SIGTERM stops all three cleanly with their peer stores written, and B restarted without --bootnode rejoins.
func TestBinaryOperatorWalkthrough(t *testing.T) {
	dir := t.TempDir()
	dA, dB, dC := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	common := []string{"--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--log-format", "json", "--topic", "news"}
	a := start(t, append([]string{"run", "--data-dir", dA, "--metrics", "127.0.0.1:0"}, common...)...)
	addrA := a.listening(t)
	metricsURL := a.stdoutValue(t, "metrics")
	b := start(t, append([]string{"run", "--data-dir", dB, "--bootnode", addrA.String()}, common...)...)
	addrB := b.listening(t)
	apiB := strings.TrimPrefix(b.stdoutValue(t, "api"), "http://")
	c := start(t, append([]string{"run", "--data-dir", dC, "--bootnode", addrA.String()}, common...)...)
	c.listening(t)
	apiC := strings.TrimPrefix(c.stdoutValue(t, "api"), "http://")

	// `node subscribe` streams C's copy of the topic; it exits after the first message.
	sub := start(t, "subscribe", "news", "--api", apiC, "--count", "1", "--json")
	sub.waitStderr(t, "the subscription", "subscribed to news")
	// Publish through B until the message reaches C's subscriber: the first publications may go out before
	// every mesh has formed (B then has no peer in the topic, or C is not yet reachable through the mesh).
	published := 0
	err := testkit.Poll(context.Background(), 30*time.Second, func() bool {
		if sub.exited() {
			return true
		}
		published++
		code, _, errOut := runBinary(t, "publish", "news", fmt.Sprintf("hello %d from B", published), "--api", apiB)
		if code != 0 && !strings.Contains(errOut, "no peer in topic") {
			t.Fatalf("publish: exit %d: %s", code, errOut)
		}
		return false
	})
	if err != nil {
		t.Fatalf("C's subscriber got nothing after %d publications; its stderr:\n%s", published, &sub.stderr)
	}
	if code := exitCode(t, sub.err); code != 0 {
		t.Fatalf("subscribe exited %d: %s", code, &sub.stderr)
	}
	var msg adminapi.Message
	if err := json.Unmarshal([]byte(strings.TrimSpace(sub.stdout.String())), &msg); err != nil {
		t.Fatalf("subscribe --json printed %q: %v", sub.stdout.String(), err)
	}
	if msg.Origin != addrB.ID.String() || msg.Data == nil || !strings.HasPrefix(*msg.Data, "hello ") || !strings.HasSuffix(*msg.Data, " from B") {
		t.Fatalf("C received %+v, want a hello from B", msg)
	}

	// The CLI clients read the API: status and peers, as text and JSON.
	code, out, errOut := runBinary(t, "status", "--api", apiB)
	if code != 0 || !strings.Contains(out, addrB.String()) || !strings.Contains(out, "news") {
		t.Fatalf("status: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, errOut = runBinary(t, "peers", "--api", apiB, "--json")
	var peers []adminapi.Peer
	if code != 0 || json.Unmarshal([]byte(out), &peers) != nil || len(peers) == 0 {
		t.Fatalf("peers --json: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A request through the API to A's built-in echo protocol comes back.
	code, out, errOut = runBinary(t, "send", addrA.ID.String(), echoProtocol, "ping?", "--request", "--api", apiB)
	if code != 0 || strings.TrimSpace(out) != "ping?" {
		t.Fatalf("send --request to A's echo: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// A's metrics show its peers and the gossip it relayed or received.
	body := httpGet(t, metricsURL)
	for _, want := range []string{
		`actormesh_peers{direction="inbound"}`,
		`actormesh_gossip_events_total{event="delivered"}`,
		`actormesh_messages_total{direction="in",protocol="actormesh/gossip/1"}`,
		`actormesh_routing_table_entries`,
		`actormesh_gossip_propagation_delay_milliseconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("A's /metrics lacks %s", want)
		}
	}

	for name, p := range map[string]*proc{"A": a, "B": b, "C": c} {
		if code := p.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM; stderr:\n%s", name, code, &p.stderr)
		}
	}
	for _, d := range []string{dA, dB, dC} {
		if st, err := os.Stat(filepath.Join(d, "peers.pb")); err != nil || st.Size() == 0 {
			t.Fatalf("peer store in %s: %v", d, err)
		}
	}

	// B restarted from its data directory alone (no --bootnode) finds its way back: C is still down, A is
	// restarted at the same address (it may take a new port; the store has both A and C, so restart both).
	a2 := start(t, "run", "--data-dir", dA, "--listen", addrA.Addr, "--api", "off", "--log-format", "json")
	a2.listening(t)
	b2 := start(t, "run", "--data-dir", dB, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--log-format", "json")
	if got := b2.listening(t).ID; got != addrB.ID {
		t.Fatalf("B restarted as %s, was %s", got, addrB.ID)
	}
	apiB2 := strings.TrimPrefix(b2.stdoutValue(t, "api"), "http://")
	testkit.WaitFor(t, 20*time.Second, func() bool {
		code, out, _ := runBinary(t, "peers", "--api", apiB2, "--json")
		return code == 0 && strings.Contains(out, addrA.ID.String())
	}, "restarted B to reconnect to A from its peer store; stderr:\n%s", &b2.stderr)
	for name, p := range map[string]*proc{"A": a2, "B": b2} {
		if code := p.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
			t.Fatalf("restarted %s exited %d after SIGTERM; stderr:\n%s", name, code, &p.stderr)
		}
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}

// TestAPIListensOnLoopbackByDefault: a bare :port binds 127.0.0.1, and a non-loopback address needs --api-remote.
func TestAPIListensOnLoopbackByDefault(t *testing.T) {
	r := startInProcess(t, "--listen", "127.0.0.1:0", "--api", ":0")
	r.listening(t)
	testkit.WaitFor(t, 10*time.Second, func() bool { return strings.Contains(r.stdout.String(), "\napi ") },
		"the api line; stderr:\n%s", &r.stderr)
	if !strings.Contains(r.stdout.String(), "api http://127.0.0.1:") {
		t.Fatalf("--api :0 should listen on 127.0.0.1; stdout:\n%s", r.stdout.String())
	}
	if code := r.stop(t); code != exitOK {
		t.Fatalf("exit %d: %s", code, &r.stderr)
	}

	code, _, errOut := call(t, "run", "--listen", "127.0.0.1:0", "--api", "0.0.0.0:0")
	if code != exitUsage || !strings.Contains(errOut, "--api-remote") {
		t.Fatalf("--api 0.0.0.0:0 without --api-remote: exit %d, stderr %q", code, errOut)
	}
}

// --api-remote reaches the API it enables: a request whose Host names the node (as a remote client's does) is served
// with it, and refused without it (403: on loopback, such a Host is a web page's name resolving to 127.0.0.1).
func TestAPIRemoteServesOtherHostNames(t *testing.T) {
	for _, remote := range []bool{false, true} {
		args := []string{"--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"}
		if remote {
			args = append(args, "--api-remote")
		}
		r := startInProcess(t, args...)
		r.listening(t)
		req, err := http.NewRequest("GET", "http://"+r.apiAddr(t)+"/v1/self", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "node.example:31700"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusForbidden, true: http.StatusOK}[remote]; resp.StatusCode != want {
			t.Errorf("--api-remote %v: GET /v1/self with Host node.example: %d, want %d", remote, resp.StatusCode, want)
		}
		if code := r.stop(t); code != exitOK {
			t.Fatalf("exit %d: %s", code, &r.stderr)
		}
	}
}

// --api off, in any case, runs the node with no API (OFF was a bad host:port).
func TestAPIOffInAnyCaseDisablesIt(t *testing.T) {
	r := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "OFF")
	r.listening(t)
	if code := r.stop(t); code != exitOK {
		t.Fatalf("--api OFF: exit %d: %s", code, &r.stderr)
	}
	if out := r.stdout.String(); strings.Contains(out, "\napi ") {
		t.Fatalf("--api OFF served an API; stdout:\n%s", out)
	}
}

// TestClientsReportAnUnreachableAPI: a client whose --api has no node behind it says so, with exit code 1.
func TestClientsReportAnUnreachableAPI(t *testing.T) {
	addr := freeAddr(t)
	for _, args := range [][]string{
		{"status", "--api", addr},
		{"peers", "--api", addr},
		{"publish", "news", "x", "--api", addr},
		{"subscribe", "news", "--api", addr},
	} {
		code, out, errOut := call(t, args...)
		if code != exitError || out != "" || !strings.Contains(errOut, "cannot reach the admin API") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1 and a message about the API", args, code, out, errOut)
		}
	}
}
