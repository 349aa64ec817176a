package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// runConfig parses args as the flags of `node run` and returns the node config they give.
func runConfig(t *testing.T, args ...string) (actors.Config, error) {
	t.Helper()
	var o runOptions
	if err := newRunCmdWith(&o).ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return o.config(zerolog.Nop())
}

func TestRunDiscoveryFlagsReachTheConfig(t *testing.T) {
	a := session.PeerAddr{ID: randomID(t), Addr: "127.0.0.1:30700"}
	b := session.PeerAddr{ID: randomID(t), Addr: "192.0.2.1:30701"}
	cfg, err := runConfig(t, "--bootnode", a.String(), "--bootnode", b.String(), "--data-dir", "/var/lib/x",
		"--target-outbound", "3")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Bootstrap.Bootnodes, []session.PeerAddr{a, b}) {
		t.Errorf("Bootnodes %v, want [%v %v]", cfg.Bootstrap.Bootnodes, a, b)
	}
	if cfg.DataDir != "/var/lib/x" || cfg.Bootstrap.TargetOutbound != 3 {
		t.Errorf("DataDir %q, TargetOutbound %d; want /var/lib/x and 3", cfg.DataDir, cfg.Bootstrap.TargetOutbound)
	}

	cfg, err = runConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	if def := actors.DefaultConfig().Bootstrap.TargetOutbound; cfg.Bootstrap.TargetOutbound != def {
		t.Errorf("default TargetOutbound %d, want %d", cfg.Bootstrap.TargetOutbound, def)
	}
	if len(cfg.Bootstrap.Bootnodes) != 0 || cfg.DataDir != "" {
		t.Errorf("defaults: Bootnodes %v, DataDir %q; want none", cfg.Bootstrap.Bootnodes, cfg.DataDir)
	}
}

func TestRunLoopbackListenExemptsLoopbackPeers(t *testing.T) {
	for listen, want := range map[string]bool{
		"127.0.0.1:0":     true,
		"127.0.0.2:30700": true,
		"[::1]:0":         true,
		"localhost:30700": true,
		"0.0.0.0:0":       false,
		"[::]:0":          false,
		"192.0.2.1:30700": false,
	} {
		cfg, err := runConfig(t, "--listen", listen)
		if err != nil {
			t.Fatalf("--listen %s: %v", listen, err)
		}
		if cfg.ExemptLoopbackThrottle != want || cfg.Routing.Table.ExemptLoopback != want {
			t.Errorf("--listen %s: ExemptLoopbackThrottle %v, Routing.Table.ExemptLoopback %v; want both %v",
				listen, cfg.ExemptLoopbackThrottle, cfg.Routing.Table.ExemptLoopback, want)
		}
	}
}

func TestRunBadDiscoveryFlagsExitWithUsageCode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	for _, tc := range []struct {
		args []string
		want string // the message names the flag
	}{
		{[]string{"--bootnode", "not-an-address"}, "--bootnode: session: bad peer address"},
		{[]string{"--bootnode", randomID(t).String() + "@127.0.0.1"}, "--bootnode: session: bad peer address"},
		{[]string{"--bootnode", "00@127.0.0.1:30700", "--data-dir", dir}, "--bootnode: session: bad peer address"},
		{[]string{"--target-outbound", "-1"}, "--target-outbound must not be negative"},
		{[]string{"--target-outbound", "many"}, `invalid argument "many" for "--target-outbound"`},
		{[]string{"--advertise", "203.0.113.7"}, `--advertise "203.0.113.7": want host:port`},
		{[]string{"--advertise", "203.0.113.7:0"}, `--advertise "203.0.113.7:0": want host:port`},
	} {
		args := append([]string{"run", "--listen", "127.0.0.1:0"}, tc.args...)
		code, out, errOut := call(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut)
			continue
		}
		if out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "--help") {
			t.Errorf("%q: stdout %q, stderr %q: want %q and a pointer to --help", args, out, errOut, tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a rejected command line created --data-dir (stat: %v)", err)
	}
}

func TestAdvertiseFlagSetsTheAddressPeersDial(t *testing.T) {
	o := runOptions{listen: "0.0.0.0:30700", advertise: "203.0.113.7:30700", maxInbound: 50, maxOutbound: 25,
		targetOutbound: 8, network: "actormesh"}
	cfg, err := o.config(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdvertiseAddr != "203.0.113.7:30700" || cfg.ListenAddr != "0.0.0.0:30700" {
		t.Fatalf("AdvertiseAddr %q, ListenAddr %q", cfg.AdvertiseAddr, cfg.ListenAddr)
	}
}

func TestPingClientRunsNoDiscovery(t *testing.T) {
	o := pingOptions{count: 1, timeout: time.Second, network: actors.DefaultConfig().NetworkID}
	cfg, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.DisableDiscovery || cfg.ListenAddr != "" {
		t.Fatalf("ping node: DisableDiscovery %v, ListenAddr %q; want a pure client (true, \"\")", cfg.DisableDiscovery, cfg.ListenAddr)
	}
}

// inProcessRun is a `node run` running in this process.
type inProcessRun struct {
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	exited         chan int
}

// startInProcess runs Main with `run` and args until stop (or the test's end).
func startInProcess(t *testing.T, args ...string) *inProcessRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &inProcessRun{cancel: cancel, exited: make(chan int, 1)}
	go func() { r.exited <- Main(ctx, append([]string{"run"}, args...), &r.stdout, &r.stderr) }()
	t.Cleanup(func() {
		cancel()
		<-r.exited
	})
	return r
}

// listening waits for the "listening" line and returns the address it gives.
func (r *inProcessRun) listening(t *testing.T) session.PeerAddr {
	t.Helper()
	var line string
	testkit.WaitFor(t, 10*time.Second, func() bool {
		var ok bool
		line, ok = r.stdout.firstLine()
		return ok
	}, "the listening line (stderr: %s)", &r.stderr)
	addr, err := session.ParsePeerAddr(strings.TrimPrefix(line, "listening "))
	if err != nil {
		t.Fatalf("listening line %q: %v", line, err)
	}
	return addr
}

// stop ends the run and returns its exit code.
func (r *inProcessRun) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.exited:
		r.exited <- code // for the cleanup
		return code
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not exit within 10s of its context ending; stderr:\n%s", &r.stderr)
		return -1
	}
}

func TestRunDataDirKeepsTheIdentity(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // does not exist yet
	args := []string{"--listen", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json"}

	first := startInProcess(t, args...)
	id := first.listening(t).ID
	if code := first.stop(t); code != exitOK {
		t.Fatalf("first run exited %d: %s", code, &first.stderr)
	}
	if s := first.stderr.String(); !strings.Contains(s, "created a new identity") || strings.Contains(s, "in-memory identity") {
		t.Fatalf("first run should create the identity in the data dir:\n%s", s)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, %v; want a directory with mode 0700", st, err)
	}
	key := filepath.Join(dir, "node.key")
	if stored, err := session.LoadIdentity(key); err != nil || stored.NodeID() != id {
		t.Fatalf("%s: %v; want the identity the node ran with, %s", key, err, id)
	}

	second := startInProcess(t, args...)
	if got := second.listening(t).ID; got != id {
		t.Fatalf("second run with the same --data-dir listens as %s, the first as %s", got, id)
	}
	if code := second.stop(t); code != exitOK {
		t.Fatalf("second run exited %d: %s", code, &second.stderr)
	}
	if s := second.stderr.String(); strings.Contains(s, "created a new identity") {
		t.Fatalf("second run created another identity:\n%s", s)
	}
}

// jsonLogHas tells whether a --log-format json stream has a line with message msg and every field of want.
func jsonLogHas(logs, msg string, want map[string]string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["message"] != msg {
			continue
		}
		match := true
		for k, v := range want {
			if line[k] != v {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// TestBinaryNodesDiscoverEachOtherThroughABootnode runs A, then B and C with --bootnode A: B and C learn of each
// other from A and connect. B saves its peer store at shutdown and finds its way back from it alone.
func TestBinaryNodesDiscoverEachOtherThroughABootnode(t *testing.T) {
	dir := t.TempDir()
	dA, dB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	logs := []string{"--log-format", "json"}
	a := start(t, append([]string{"run", "--listen", "127.0.0.1:0", "--data-dir", dA}, logs...)...)
	addrA := a.listening(t)
	b := start(t, append([]string{"run", "--listen", "127.0.0.1:0", "--data-dir", dB, "--bootnode", addrA.String()}, logs...)...)
	addrB := b.listening(t)
	// A knows B before C asks it for peers.
	a.waitStderr(t, "B's connection", `"peer":"`+addrB.ID.String()+`"`, `"message":"peer up"`)
	c := start(t, append([]string{"run", "--listen", "127.0.0.1:0", "--bootnode", addrA.String()}, logs...)...)
	addrC := c.listening(t)

	testkit.WaitFor(t, 15*time.Second, func() bool {
		return jsonLogHas(c.stderr.String(), "peer up", map[string]string{"peer": addrB.ID.String()}) ||
			jsonLogHas(b.stderr.String(), "peer up", map[string]string{"peer": addrC.ID.String()})
	}, "B and C to connect through discovery; B's stderr:\n%s\nC's stderr:\n%s", &b.stderr, &c.stderr)

	// `node run` logs each peer event once ("peer up"/"peer down"); the peer manager's own lines are debug.
	for name, p := range map[string]*proc{"A": a, "B": b, "C": c} {
		if s := p.stderr.String(); jsonLogHas(s, "peer connected", nil) || jsonLogHas(s, "peer disconnected", nil) {
			t.Errorf("%s logged the peer manager's connection lines at info level:\n%s", name, s)
		}
	}

	if code := b.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("B exited %d after SIGTERM; stderr:\n%s", code, &b.stderr)
	}
	store := filepath.Join(dB, "peers.pb")
	recs, err := routing.LoadStore(store)
	if err != nil || len(recs) == 0 {
		t.Fatalf("B's peer store %s: %d records, %v; want A and C", store, len(recs), err)
	}
	var stored []session.NodeID
	for _, r := range recs {
		id, err := routing.VerifyRecord(r)
		if err != nil {
			t.Fatalf("B's peer store holds a bad record: %v", err)
		}
		stored = append(stored, id)
	}
	if !slices.Contains(stored, addrA.ID) {
		t.Fatalf("B's peer store holds %v, not the bootnode A %s", stored, addrA.ID)
	}

	// Restarted without --bootnode, B keeps its NodeID (dB/node.key) and rejoins from its peer store.
	b2 := start(t, append([]string{"run", "--listen", "127.0.0.1:0", "--data-dir", dB}, logs...)...)
	if got := b2.listening(t).ID; got != addrB.ID {
		t.Fatalf("B restarted as %s, was %s", got, addrB.ID)
	}
	b2.waitStderr(t, "B to rejoin from its peer store", `"message":"peer store loaded"`, `"message":"peer up"`)
	if code := b2.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("restarted B exited %d after SIGTERM; stderr:\n%s", code, &b2.stderr)
	}

	for name, p := range map[string]*proc{"A": a, "C": c} {
		if code := p.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM; stderr:\n%s", name, code, &p.stderr)
		}
	}
}

// A busy --api or --metrics port fails node run before it announces itself: it printed "listening <addr>" (the
// line scripts read as "the node is up"), then failed.
func TestRunWithABusyHTTPPortFailsBeforeAnnouncingItself(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, flag := range []string{"--api", "--metrics"} {
		code, out, errOut := call(t, "run", "--listen", "127.0.0.1:0", flag, busy.Addr().String())
		if code != exitError || out != "" || !strings.Contains(errOut, "address already in use") {
			t.Errorf("%s on a busy port: exit %d, stdout %q, stderr %q: want exit %d, nothing on stdout, the bind error",
				flag, code, out, errOut, exitError)
		}
	}
}

// A second node on a data directory or key file another node runs with fails to start, naming the holder: two
// nodes with one identity replaced each other's connections wherever they met, and the copy's record sent the
// network to its port after it stopped (an audit's finding). Once the first stops, the directory is free again.
func TestASecondNodeOnADataDirOrKeyFailsToStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	first := startInProcess(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	first.listening(t)
	key := filepath.Join(dir, "node.key")
	for _, c := range []struct{ flag, path, want string }{
		{"--data-dir", dir, "data directory " + dir + " is in use by another node process (pid "},
		{"--key", key, "key file " + key + " is in use by another node process"},
	} {
		second := startInProcess(t, "--listen", "127.0.0.1:0", c.flag, c.path)
		select {
		case code := <-second.exited:
			second.exited <- code // for the cleanup
			if out := second.stdout.String(); code != exitError || out != "" || !strings.Contains(second.stderr.String(), c.want) {
				t.Errorf("a second node on the %s: exit %d, stdout %q, stderr %q; want exit %d and %q", c.flag, code, out,
					&second.stderr, exitError, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("a second node on the %s of a running one started (stdout %q)", c.flag, second.stdout.String())
			second.stop(t)
		}
	}
	if code := first.stop(t); code != exitOK {
		t.Fatalf("first run exited %d: %s", code, &first.stderr)
	}
	again := startInProcess(t, "--listen", "127.0.0.1:0", "--data-dir", dir)
	again.listening(t)
	if code := again.stop(t); code != exitOK {
		t.Fatalf("a node on the data dir after the first stopped exited %d: %s", code, &again.stderr)
	}
}

// A command line the node's config refuses exits 2 before anything is written: checks of actors.Config.Validate
// that the flags' own checks do not make created --data-dir, its LOCK and a new identity, then failed. The flags'
// own checks name the flag.
func TestRunRefusedConfigCreatesNoDataDir(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--network", strings.Repeat("n", actors.MaxNetworkIDLength+1)}, "NetworkID"},
		{[]string{"--advertise", "0.0.0.0:30700"}, "AdvertiseAddr"},
		{[]string{"--advertise", "203.0.113.7:http"}, "AdvertiseAddr"},
		{[]string{"--network", ""}, "--network must not be empty"},
		{[]string{"--max-inbound", "0"}, "--max-inbound and --max-outbound must be at least 1"},
		{[]string{"--max-outbound", "0"}, "--max-inbound and --max-outbound must be at least 1"},
	} {
		dir := filepath.Join(t.TempDir(), "state")
		full := append([]string{"run", "--listen", "127.0.0.1:0", "--api", "off", "--data-dir", dir}, tc.args...)
		code, out, errOut := call(t, full...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d and %q", tc.args[0], code, out, errOut, exitUsage, tc.want)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s %.20q: the refused command line created --data-dir (stat: %v)", tc.args[0], tc.args[1], err)
		}
	}
}

// A signal that comes while the node starts (here before: the earliest, and the one moment a test can choose
// without a sleep) ends the run as one after the startup does: logged, exit code 0, no listening line, the data
// directory's lock freed. It exited 1 with "start node: context canceled".
func TestASignalDuringTheStartupIsACleanShutdown(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr syncBuffer
	code := Main(ctx, []string{"run", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code %d, want %d; stderr:\n%s", code, exitOK, &stderr)
	}
	if !jsonLogHas(stderr.String(), "shutting down: interrupted while starting", nil) {
		t.Errorf("no shutdown line:\n%s", &stderr)
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q, want nothing: the node never listened for peers", stdout.String())
	}
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("the data directory is still locked: %v", err)
	}
	release()
}

// runConfigFromSources is runConfig with the environment and the --config file applied, as `node run` applies them
// before it runs (its PreRunE).
func runConfigFromSources(t *testing.T, args ...string) (actors.Config, error) {
	t.Helper()
	var o runOptions
	cmd := newRunCmdWith(&o)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if err := cmd.PreRunE(cmd, nil); err != nil {
		return actors.Config{}, err
	}
	return o.config(zerolog.Nop())
}

// --rekey-interval sets Config.RekeyInterval from the command line, the environment (ACTORMESH_REKEY_INTERVAL) or
// the config file, 0 (the session's default) when none sets it; `node run` had no way to set it.
func TestRunRekeyIntervalFlagReachesTheConfig(t *testing.T) {
	t.Setenv("ACTORMESH_CONFIG", "")
	t.Setenv("ACTORMESH_REKEY_INTERVAL", "")
	cfg, err := runConfigFromSources(t)
	if err != nil || cfg.RekeyInterval != 0 {
		t.Fatalf("default: RekeyInterval %d (%v), want 0", cfg.RekeyInterval, err)
	}
	file := writeConfig(t, fmt.Sprintf("rekey-interval = %d\n", session.MaxRekeyInterval))
	for _, tc := range []struct {
		name, env string
		args      []string
		want      int
	}{
		{"flag", "", []string{"--rekey-interval", "1024"}, session.MinRekeyInterval},
		{"environment", "4096", nil, 4096},
		{"config file", "", []string{"--config", file}, session.MaxRekeyInterval},
		{"environment over the file", "2048", []string{"--config", file}, 2048},
	} {
		t.Setenv("ACTORMESH_REKEY_INTERVAL", tc.env)
		cfg, err := runConfigFromSources(t, tc.args...)
		if err != nil || cfg.RekeyInterval != tc.want {
			t.Errorf("%s: RekeyInterval %d (%v), want %d", tc.name, cfg.RekeyInterval, err, tc.want)
		}
	}

	// A value out of session's bounds stops `node run` with the usage exit code and a message naming the flag,
	// its bounds and where the value came from.
	t.Setenv("ACTORMESH_REKEY_INTERVAL", "")
	code, out, errOut := call(t, "run", "--listen", "127.0.0.1:0", "--rekey-interval", "5")
	if code != exitUsage || out != "" || !strings.Contains(errOut, "--rekey-interval 5: want 0") ||
		!strings.Contains(errOut, "1024 to 4194304") {
		t.Errorf("--rekey-interval 5: exit %d, stdout %q, stderr %q; want %d and the flag's bounds", code, out, errOut, exitUsage)
	}
	t.Setenv("ACTORMESH_REKEY_INTERVAL", "8388608")
	code, _, errOut = call(t, "run", "--listen", "127.0.0.1:0")
	if code != exitUsage || !strings.Contains(errOut, "environment variable ACTORMESH_REKEY_INTERVAL: --rekey-interval 8388608") {
		t.Errorf("ACTORMESH_REKEY_INTERVAL=8388608: exit %d, stderr %q; want %d and the variable named", code, errOut, exitUsage)
	}
	t.Setenv("ACTORMESH_REKEY_INTERVAL", "")
	code, _, errOut = call(t, "run", "--listen", "127.0.0.1:0", "--config", writeConfig(t, "rekey-interval = 1000\n"))
	if code != exitUsage || !strings.Contains(errOut, "config file") || !strings.Contains(errOut, "--rekey-interval 1000") {
		t.Errorf("rekey-interval = 1000 in the file: exit %d, stderr %q; want %d and the file named", code, errOut, exitUsage)
	}
}
