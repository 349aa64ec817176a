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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// fakePublishAPI is an admin API that accepts every publication and records the requests' bodies.
type fakePublishAPI struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []adminapi.PublishRequest
}

func newFakePublishAPI(t *testing.T) *fakePublishAPI {
	t.Helper()
	api := &fakePublishAPI{}
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req adminapi.PublishRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		api.mu.Lock()
		api.bodies = append(api.bodies, req)
		api.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(adminapi.PublishResponse{ID: "00"})
	}))
	t.Cleanup(api.Close)
	return api
}

// The Go-style single-dash flags are rewritten only before "--": what follows is data, however it looks.
func TestArgumentsAfterDoubleDashAreNotRewritten(t *testing.T) {
	api := newFakePublishAPI(t)
	code, _, errOut := call(t, "publish", "-api", api.URL, "news", "--", "-json")
	if code != exitOK {
		t.Fatalf("publish: exit %d: %s", code, errOut)
	}
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.bodies) != 1 || api.bodies[0].Data == nil || *api.bodies[0].Data != "-json" {
		t.Fatalf("published %+v, want the one message \"-json\"", api.bodies)
	}
}

// An empty --key is a usage error (exit 2) for keygen and id, not an attempt to open "".
func TestAnEmptyKeyPathIsAUsageError(t *testing.T) {
	for _, cmd := range []string{"keygen", "id"} {
		code, out, errOut := call(t, cmd, "--key", "")
		if code != exitUsage || out != "" || !strings.Contains(errOut, "--key must not be empty") {
			t.Errorf("%s --key \"\": exit %d, stdout %q, stderr %q; want exit %d and --key named", cmd, code, out, errOut,
				exitUsage)
		}
	}
}

// keygen creates the missing directories of the key file private (0700), as LoadOrCreateIdentity does.
func TestKeygenCreatesTheKeyDirectoryPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys", "sub")
	if code, _, errOut := call(t, "keygen", "--key", filepath.Join(dir, "node.key")); code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if st, err := os.Stat(d); err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory with mode 0700", d, st, err)
		}
	}
}

// The bounds of node ping's flags: an interval of 0 is allowed within the burst a node answers at once, and past it
// an interval of exactly the rate's period; a zero timeout is refused (it meant every ping timed out at once).
func TestPingFlagBounds(t *testing.T) {
	period := time.Second / actors.PingRate
	for _, tc := range []struct {
		count    int
		interval time.Duration
		timeout  time.Duration
		ok       bool
	}{
		{1, 0, time.Second, true},
		{actors.PingBurst, 0, time.Second, true},
		{actors.PingBurst + 1, period, time.Second, true},
		{actors.PingBurst + 1, period - 1, time.Second, false},
		{1, 0, 0, false},
		{1, 0, time.Nanosecond, true},
	} {
		o := pingOptions{count: tc.count, interval: tc.interval, timeout: tc.timeout, network: actors.DefaultConfig().NetworkID}
		_, err := o.config()
		var ue *usageError
		if tc.ok && err != nil || !tc.ok && !errors.As(err, &ue) {
			t.Errorf("--count %d --interval %v --timeout %v: %v; want ok %v (or a usage error)", tc.count, tc.interval,
				tc.timeout, err, tc.ok)
		}
	}
}

// The ping summary counts the pings without a reply in the loss and averages the round trips it got.
func TestPingSummaryFigures(t *testing.T) {
	var b strings.Builder
	printSummary(&b, "abcd", 4, []time.Duration{time.Millisecond, 3 * time.Millisecond})
	want := "--- abcd ping statistics ---\n4 sent, 2 received, 50% loss\nrtt min/avg/max = 1ms/2ms/3ms\n"
	if b.String() != want {
		t.Fatalf("summary %q, want %q", b.String(), want)
	}
}

// callOn is a writer that calls do once what was written holds want.
type callOn struct {
	syncBuffer
	want string
	do   func()
	once sync.Once
}

func (w *callOn) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(w.do)
	}
	return n, err
}

// A ping interrupted once connected, before any reply, counts no ping sent and fails as interrupted (exit 1): the
// interrupted ping is not a lost one, and an interrupted run is not a success.
func TestPingInterruptedBeforeAnyReply(t *testing.T) {
	addr := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "off").listening(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &callOn{want: "connected to", do: cancel}
	err := ping(ctx, addr.String(), pingOptions{count: 3, timeout: 5 * time.Second, network: actors.DefaultConfig().NetworkID}, out)
	if err == nil || err.Error() != "interrupted" || !strings.Contains(out.String(), "0 sent, 0 received") {
		t.Fatalf("ping interrupted after connecting: %v, stdout:\n%s\nwant \"interrupted\" and 0 pings sent", err, out)
	}
}

// apiAddr waits for the run's "api http://host:port" line and returns host:port.
func (r *inProcessRun) apiAddr(t *testing.T) string {
	t.Helper()
	var api string
	testkit.WaitFor(t, 10*time.Second, func() bool {
		for _, l := range strings.Split(r.stdout.String(), "\n") {
			if v, ok := strings.CutPrefix(l, "api http://"); ok {
				api = v
				return true
			}
		}
		return false
	}, "the api line (stderr: %s)", &r.stderr)
	return api
}

// exit waits for the run to exit by itself (a failure to start) and returns its exit code.
func (r *inProcessRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.exited:
		r.exited <- code // for the cleanup
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("run still running after 10s, want it to fail at start; stdout %q", r.stdout.String())
		return -1
	}
}

// keygenAt creates a key file with node keygen and returns its NodeID.
func keygenAt(t *testing.T, path string) session.NodeID {
	t.Helper()
	code, out, errOut := call(t, "keygen", "--key", path)
	if code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	id, err := session.ParseNodeID(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// --key wins over --data-dir's node.key: the node runs as the key file's identity and creates none in the directory.
// The run logs that it shuts down when its context ends.
func TestRunKeyFlagWinsOverTheDataDirKey(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "own.key")
	id := keygenAt(t, key)
	state := filepath.Join(dir, "state")
	r := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "off", "--data-dir", state, "--key", key, "--log-format", "json")
	if got := r.listening(t).ID; got != id {
		t.Fatalf("node runs as %s, --key holds %s", got, id)
	}
	if code := r.stop(t); code != exitOK {
		t.Fatalf("run exited %d: %s", code, &r.stderr)
	}
	if _, err := os.Stat(filepath.Join(state, dataDirKeyFile)); !os.IsNotExist(err) {
		t.Errorf("--data-dir got a %s beside --key (stat: %v)", dataDirKeyFile, err)
	}
	if !jsonLogHas(r.stderr.String(), "shutting down", nil) {
		t.Errorf("no \"shutting down\" line:\n%s", &r.stderr)
	}
}

// A node that fails to start for a bad key file gives its data directory's lock back: the next node on the
// directory starts.
func TestRunReleasesTheDataDirLockWhenTheKeyFails(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	failed := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "off", "--data-dir", state, "--key", bad)
	if code := failed.exit(t); code != exitError || !strings.Contains(failed.stderr.String(), "bad key file") {
		t.Fatalf("run with a bad key: exit %d, stderr %q; want %d and a bad key file", code, &failed.stderr, exitError)
	}
	r := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "off", "--data-dir", state)
	r.listening(t)
	if code := r.stop(t); code != exitOK {
		t.Fatalf("next run on the data dir exited %d: %s", code, &r.stderr)
	}
}

// A --peer connection is kept (redialed when it drops), as the flag's help says, and a --peer entry naming the node
// itself (a shared configuration) is left out rather than dialed.
func TestRunPeerFlagConnectionsAreKeptAndSelfIsLeftOut(t *testing.T) {
	a := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "off")
	addrA := a.listening(t)
	key := filepath.Join(t.TempDir(), "b.key")
	idB := keygenAt(t, key)
	self := session.PeerAddr{ID: idB, Addr: freeAddr(t)}
	b := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--key", key, "--log-format", "json",
		"--peer", self.String(), "--peer", addrA.String())
	b.listening(t)
	api := b.apiAddr(t)
	var peers []adminapi.Peer
	testkit.WaitFor(t, 10*time.Second, func() bool {
		code, out, _ := call(t, "peers", "--api", api, "--json")
		return code == exitOK && json.Unmarshal([]byte(out), &peers) == nil && len(peers) > 0
	}, "B to connect to A")
	if len(peers) != 1 || peers[0].ID != addrA.ID.String() || !peers[0].Kept {
		t.Errorf("B's peers %+v, want A, kept", peers)
	}
	if code := b.stop(t); code != exitOK {
		t.Fatalf("B exited %d: %s", code, &b.stderr)
	}
	// The connect goroutines are done when run returns: a dial of the node's own entry would have been logged.
	if s := b.stderr.String(); strings.Contains(s, "peer not reachable yet") {
		t.Errorf("B dialed its own --peer entry:\n%s", s)
	}
}

// A --metrics address that cannot be bound fails the run and frees the admin API's listener bound before it.
func TestRunFailingMetricsListenerFreesTheAPIPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	api := freeAddr(t)
	code, _, errOut := call(t, "run", "--listen", "127.0.0.1:0", "--api", api, "--metrics", busy.Addr().String())
	if code != exitError || !strings.Contains(errOut, "metrics") {
		t.Fatalf("busy --metrics: exit %d, stderr %q; want %d and a metrics error", code, errOut, exitError)
	}
	ln, err := net.Listen("tcp", api)
	if err != nil {
		t.Fatalf("the --api address is still bound after the run failed: %v", err)
	}
	ln.Close()
}

// sseServer serves a topic stream: ": subscribed", then keepalives every tick until it has sent n of them, then one
// message, then it holds the stream open until the client leaves.
func sseServer(t *testing.T, keepalives int, tick time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": subscribed to news\n\n")
		w.(http.Flusher).Flush()
		tk := time.NewTicker(tick)
		defer tk.Stop()
		for sent := 0; sent <= keepalives; {
			select {
			case <-r.Context().Done():
				return
			case <-tk.C:
			}
			if sent++; sent > keepalives {
				fmt.Fprint(w, "event: message\ndata: {\"topic\":\"news\",\"origin\":\"x\",\"data\":\"hello\"}\n\n")
			} else {
				fmt.Fprint(w, ": keepalive\n\n")
			}
			w.(http.Flusher).Flush()
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Every line of the stream, keepalives included, restarts the silence allowed: a stream that keeps alive for longer
// than that is not given up on. The silence allowed is ten ticks: with 200 ms (four ticks of 50 ms), a loaded host
// that ran the server's or the client's goroutine late gave the stream up (1 full-suite run in 3 under load, stop 61).
func TestSubscribeKeepalivesKeepTheStream(t *testing.T) {
	srv := sseServer(t, 20, 200*time.Millisecond) // 4 s of keepalives, twice the silence allowed
	o := &clientOptions{api: srv.URL, silence: 2 * time.Second}
	var out strings.Builder
	if err := o.subscribe(context.Background(), "news", 1, &out, io.Discard); err != nil || !strings.Contains(out.String(), "hello") {
		t.Fatalf("subscribe: %v, printed %q; want the message after the keepalives", err, out.String())
	}
}

// An interrupted subscribe (SIGINT: its context ends) exits cleanly, not with "the node closed the stream".
func TestSubscribeInterruptedEndsCleanly(t *testing.T) {
	srv := sseServer(t, 1000, time.Second)
	o := &clientOptions{api: srv.URL}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errw := &callOn{want: "subscribed to news", do: cancel}
	if err := o.subscribe(ctx, "news", 0, io.Discard, errw); err != nil {
		t.Fatalf("interrupted subscribe: %v, want nil", err)
	}
}

// A node that shuts down ends its API's topic streams itself ("event: end"), so that `node subscribe` says why,
// rather than leaving them for the HTTP server's shutdown to cut.
func TestRunShutdownEndsTheTopicStreams(t *testing.T) {
	r := startInProcess(t, "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0")
	r.listening(t)
	o := &clientOptions{api: r.apiAddr(t)}
	errw := &callOn{want: "subscribed to news", do: r.cancel}
	err := o.subscribe(context.Background(), "news", 0, io.Discard, errw)
	if err == nil || !strings.Contains(err.Error(), "the node ended the stream") {
		t.Fatalf("subscribe to a node shutting down: %v, want the node's end of the stream", err)
	}
	if code := r.stop(t); code != exitOK {
		t.Fatalf("run exited %d: %s", code, &r.stderr)
	}
}

// A message's delivery line steps up by one receiver's share at each delivery: half-way after the first of two, at
// the top after the second.
func TestDeliveryChartStepsUpAtEachDelivery(t *testing.T) {
	c := deliveryChart([]testkit.MessageDetail{{Published: true, Expected: 2, Delays: []float64{10, 20}}})
	if len(c.Lines) != 1 {
		t.Fatalf("%d lines, want 1", len(c.Lines))
	}
	var ys []string
	for _, p := range strings.Fields(c.Lines[0].Points) {
		_, y, _ := strings.Cut(p, ",")
		ys = append(ys, y)
	}
	bottom, half, top := num(plotY0), num(float64(plotY0+plotY1)/2), num(plotY1)
	if want := []string{bottom, bottom, half, half, top}; !slices.Equal(ys, want) {
		t.Fatalf("line %q: heights %v, want %v", c.Lines[0].Points, ys, want)
	}
}
