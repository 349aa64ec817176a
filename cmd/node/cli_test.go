package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// call runs the command line in-process and returns its exit code and output.
func call(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestKeygenThenIDPrintTheSameNodeID(t *testing.T) {
	key := filepath.Join(t.TempDir(), "sub", "node.key")
	code, out, errOut := call(t, "keygen", "--key", key)
	if code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	id, err := session.ParseNodeID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("keygen printed %q, not a NodeID: %v", out, err)
	}
	st, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", perm)
	}
	code, out, errOut = call(t, "id", "--key", key)
	if code != exitOK {
		t.Fatalf("id: exit %d: %s", code, errOut)
	}
	if got := strings.TrimSpace(out); got != id.String() {
		t.Fatalf("id printed %s, keygen printed %s", got, id)
	}
	loaded, err := session.LoadIdentity(key)
	if err != nil || loaded.NodeID() != id {
		t.Fatalf("session.LoadIdentity: %v, id %v; want %s", err, loaded, id)
	}
}

func TestKeygenRefusesToOverwriteWithoutForce(t *testing.T) {
	key := filepath.Join(t.TempDir(), "node.key")
	_, first, _ := call(t, "keygen", "--key", key)
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := call(t, "keygen", "--key", key)
	if code != exitError || out != "" {
		t.Fatalf("second keygen: exit %d, stdout %q; want exit 1 and no output", code, out)
	}
	if !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, "--force") {
		t.Fatalf("refusal message %q should say the file exists and mention --force", errOut)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Fatal("the refused keygen changed the key file")
	}

	code, second, errOut := call(t, "keygen", "--key", key, "--force")
	if code != exitOK {
		t.Fatalf("keygen --force: exit %d: %s", code, errOut)
	}
	if first == second {
		t.Fatal("keygen --force kept the old identity")
	}
	if _, out, _ := call(t, "id", "--key", key); out != second {
		t.Fatalf("id after --force printed %q, want %q", out, second)
	}
}

func TestIDReportsBadAndMissingKeyFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if code, _, errOut := call(t, "keygen", "--key", open); code != exitOK {
		t.Fatal(errOut)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.key"), "no key file at"},
		{"garbage", garbage, "bad key file"},
		{"permissions", open, "chmod 600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := call(t, "id", "--key", tc.path)
			if code != exitError || out != "" {
				t.Fatalf("exit %d, stdout %q; want exit 1, no output", code, out)
			}
			if !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("stderr %q: want one line mentioning %q", errOut, tc.want)
			}
		})
	}
}

func TestBadCommandLinesExitWithUsageCode(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"keygen"},
		{"id"},
		{"run", "--bogus"},
		{"run", "--listen", "nohostport"},
		{"run", "--peer", "not-an-address"},
		{"run", "--peer", strings.Repeat("ab", 32) + "@127.0.0.1:1", "--peer", strings.Repeat("ab", 32) + "@127.0.0.1:2"},
		{"run", "--log-level", "loud"},
		{"run", "--log-format", "xml"},
		{"run", "--max-inbound", "0"},
		{"run", "extra-argument"},
		{"run", "--api", "0.0.0.0:0"}, // the admin API stays on loopback unless --api-remote says otherwise
		{"run", "--api", "nohostport"},
		{"run", "--metrics", "nohostport"},
		{"run", "--topic", ""},
		{"ping"},
		{"ping", "a", "b"},
		{"ping", "not-an-address"},
		{"ping", strings.Repeat("ab", 32) + "@127.0.0.1:1", "--count", "0"},
		{"ping", strings.Repeat("ab", 32) + "@127.0.0.1:1", "--timeout", "soon"},
		// faster than a node answers: a healthy one looked lossy
		{"ping", strings.Repeat("ab", 32) + "@127.0.0.1:1", "--count", "150", "--interval", "0"},
		{"publish", "news"},
		{"publish", "news", "x", "--api", "::bad::"},
		{"subscribe"},
		{"subscribe", "news", "--count", "-1"},
		{"send", "notanid", "echo", "x"},
		{"send", strings.Repeat("ab", 32), "echo/1", "x", "--timeout", "11m"}, // the API refused it naming timeout_ms
		{"send", strings.Repeat("ab", 32), "echo/1", "x", "--timeout", "-1s"},
		{"send", strings.Repeat("ab", 32), "echo/1", "x", "--timeout", "500us"}, // went as 0 ms: the API's 10 s default
		{"status", "--timeout", "-1s"},                                          // meant no limit, silently
		{"peers", "extra"},
		{"topic-peers"},
		{"topic-peers", "a", "b"},
	} {
		code, out, errOut := call(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut)
			continue
		}
		if strings.Contains(out, "listening") || !strings.Contains(errOut, "--help") {
			t.Errorf("%q: stdout %q, stderr %q: want a message and a pointer to --help on stderr", args, out, errOut)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	code, out, _ := call(t, "run", "--help")
	if code != exitOK || !strings.Contains(out, "--listen") {
		t.Fatalf("run --help: exit %d, output %q", code, out)
	}
}

func TestEchoProtocolRepliesWithTheRequestPayload(t *testing.T) {
	nw := testkit.NewNetwork(t, 2)
	if _, err := nw.Nodes[1].Register(echoProtocol, echoProps()); err != nil {
		t.Fatal(err)
	}
	nw.Connect(0, 1)
	for _, msg := range []proto.Message{wrapperspb.String("hello"), wrapperspb.Bytes([]byte{0, 1, 2}), wrapperspb.UInt64(7)} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		reply, err := nw.Nodes[0].Request(ctx, nw.Nodes[1].ID(), echoProtocol, msg)
		cancel()
		if err != nil {
			t.Fatalf("request %v: %v", msg, err)
		}
		if !proto.Equal(reply, msg) {
			t.Fatalf("echo replied %v to %v", reply, msg)
		}
	}
}

// TestRunAndPingInProcess runs `node run` and `node ping` in this process, so that the race detector sees the
// command's own code (the subprocess tests only see exit codes and output).
func TestRunAndPingInProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runOut, runErr syncBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Main(ctx, []string{"run", "--listen", "127.0.0.1:0", "--log-level", "debug", "--log-format", "json"}, &runOut, &runErr)
	}()
	var line string
	testkit.WaitFor(t, 10*time.Second, func() bool {
		var ok bool
		line, ok = runOut.firstLine()
		return ok
	}, "the listening line (stderr: %s)", &runErr)
	addr, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("first line %q does not start with 'listening '", line)
	}
	if _, err := session.ParsePeerAddr(addr); err != nil {
		t.Fatalf("listening line %q: %v", line, err)
	}

	code, out, errOut := call(t, "ping", addr, "--count", "2", "--interval", "1ms")
	if code != exitOK {
		t.Fatalf("ping: exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "time="); n != 2 {
		t.Fatalf("ping printed %d replies, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "2 sent, 2 received, 0% loss") || !strings.Contains(out, "rtt min/avg/max") {
		t.Fatalf("ping summary missing:\n%s", out)
	}
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s := runErr.String()
		return strings.Contains(s, `"event":"connected"`) && strings.Contains(s, `"event":"disconnected"`)
	}, "run to log the ping's connection and disconnection")

	cancel()
	select {
	case code := <-exited:
		if code != exitOK {
			t.Fatalf("run exited %d: %s", code, &runErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not exit within 10s of its context ending")
	}
}
