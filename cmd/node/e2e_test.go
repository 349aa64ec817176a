package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit"
)

// The tests in this file run the built binary as a subprocess, as a user would.

// command prepares a run of the binary. Under -race the binary is race-enabled too: a data race makes it exit
// with code 66, which fails the test; atexit_sleep_ms=0 spares the race runtime's 1s pause at every exit.
func command(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, nodeBinary(t), args...)
	if raceEnabled && os.Getenv("GORACE") == "" {
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	}
	return cmd
}

// proc is a running `node` subprocess.
type proc struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	err    error // of Wait, valid once done is closed
}

// start starts the binary with args; the test's cleanup kills it if it is still running.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: command(t, context.Background(), args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Logf("killed %q; stderr:\n%s", args, &p.stderr)
		}
	})
	return p
}

// listening waits for the "listening <addr>" line a `node run` prints first and returns the address.
func (p *proc) listening(t *testing.T) session.PeerAddr {
	t.Helper()
	var line string
	err := testkit.Poll(context.Background(), 15*time.Second, func() bool {
		var ok bool
		line, ok = p.stdout.firstLine()
		return ok || p.exited()
	})
	if err != nil || line == "" {
		t.Fatalf("no listening line from %q (exited: %v); stderr:\n%s", p.cmd.Args, p.exited(), &p.stderr)
	}
	text, ok := strings.CutPrefix(line, "listening ")
	if !ok {
		t.Fatalf("first stdout line %q does not start with 'listening '", line)
	}
	addr, err := session.ParsePeerAddr(text)
	if err != nil {
		t.Fatalf("listening line %q: %v", line, err)
	}
	return addr
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitStderr waits until the process's stderr contains every one of want.
func (p *proc) waitStderr(t *testing.T, what string, want ...string) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, func() bool {
		s := p.stderr.String()
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}, "%s in the stderr of %q:\n%s", what, p.cmd.Args, &p.stderr)
}

// stop sends sig and returns the exit code, failing the test when the process outlives the timeout.
func (p *proc) stop(t *testing.T, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%q still running %v after %v; stderr:\n%s", p.cmd.Args, timeout, sig, &p.stderr)
	}
	return exitCode(t, p.err)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.Exited():
		return ee.ExitCode()
	default:
		t.Fatalf("process did not exit normally: %v", err)
		return -1
	}
}

// runBinary runs a short-lived command to completion (at most 30s).
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := command(t, ctx, args...)
	var out, errOut syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%q did not finish within 30s; stderr:\n%s", args, &errOut)
	}
	return exitCode(t, err), out.String(), errOut.String()
}

// freeAddr returns a loopback address on which nothing listens (a port that was free a moment ago).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func randomID(t *testing.T) session.NodeID {
	t.Helper()
	id, err := session.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id.NodeID()
}

func TestBinaryRunPingAndShutdown(t *testing.T) {
	key := filepath.Join(t.TempDir(), "a.key")
	code, keyID, errOut := runBinary(t, "keygen", "--key", key)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	run := start(t, "run", "--listen", "127.0.0.1:0", "--key", key)
	addr := run.listening(t)
	if addr.ID.String() != strings.TrimSpace(keyID) {
		t.Fatalf("run listens as %s, its key file holds %s", addr.ID, keyID)
	}

	t.Run("ping", func(t *testing.T) {
		code, out, errOut := runBinary(t, "ping", addr.String(), "--count", "2", "--interval", "10ms")
		if code != 0 {
			t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
		}
		if n := strings.Count(out, "time="); n != 2 {
			t.Fatalf("%d replies, want 2:\n%s", n, out)
		}
		if !strings.Contains(out, "reply from "+addr.ID.Short()+": time=") {
			t.Fatalf("replies do not name the peer %s:\n%s", addr.ID.Short(), out)
		}
		run.waitStderr(t, "the ping's connection and disconnection logged", "event=connected", "event=disconnected")
	})

	t.Run("wrong id", func(t *testing.T) {
		wrong := session.PeerAddr{ID: randomID(t), Addr: addr.Addr}
		code, out, errOut := runBinary(t, "ping", wrong.String())
		if code != 1 || strings.Contains(out, "time=") {
			t.Fatalf("exit %d, stdout %q; want 1 and no replies", code, out)
		}
		if !strings.Contains(errOut, "id mismatch") || !strings.Contains(errOut, wrong.ID.Short()) || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("stderr %q: want one line about the id mismatch naming %s", errOut, wrong.ID.Short())
		}
	})

	t.Run("network mismatch", func(t *testing.T) {
		code, _, errOut := runBinary(t, "ping", addr.String(), "--network", "elsewhere")
		if code != 1 || !strings.Contains(errOut, "network mismatch") {
			t.Fatalf("exit %d, stderr %q; want 1 and a network mismatch", code, errOut)
		}
	})

	t.Run("refused", func(t *testing.T) {
		target := session.PeerAddr{ID: addr.ID, Addr: freeAddr(t)}
		code, _, errOut := runBinary(t, "ping", target.String())
		if code != 1 || !strings.Contains(errOut, "connection refused") || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("exit %d, stderr %q; want 1 and one line saying the connection was refused", code, errOut)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		// A listener that never answers: the kernel completes the TCP handshake, nobody speaks Noise.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		target := session.PeerAddr{ID: addr.ID, Addr: ln.Addr().String()}
		code, _, errOut := runBinary(t, "ping", target.String(), "--timeout", "300ms")
		if code != 1 || !strings.Contains(errOut, "timeout") {
			t.Fatalf("exit %d, stderr %q; want 1 and a timeout", code, errOut)
		}
	})

	if code := run.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("run exited %d after SIGTERM; stderr:\n%s", code, &run.stderr)
	}
	if s := run.stderr.String(); !strings.Contains(s, "node closed") {
		t.Fatalf("run did not log a clean close:\n%s", s)
	}
}

// TestBinaryPeerFlagConnectsNodes runs two nodes, B with --peer A, and checks A logs B's connection (JSON logs).
func TestBinaryPeerFlagConnectsNodes(t *testing.T) {
	a := start(t, "run", "--listen", "127.0.0.1:0", "--log-format", "json")
	addrA := a.listening(t)
	b := start(t, "run", "--listen", "127.0.0.1:0", "--peer", addrA.String(), "--log-level", "warn")
	addrB := b.listening(t)

	a.waitStderr(t, "B's connection", `"peer":"`+addrB.ID.String()+`"`, `"event":"connected"`)
	for _, line := range strings.Split(strings.TrimSpace(a.stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("--log-format json wrote a line that is not JSON: %q", line)
		}
	}
	if s := b.stderr.String(); strings.Contains(s, "INF") || strings.Contains(s, "DBG") {
		t.Fatalf("--log-level warn let info or debug lines through:\n%s", s)
	}

	if code := b.stop(t, syscall.SIGINT, 10*time.Second); code != 0 {
		t.Fatalf("B exited %d after SIGINT; stderr:\n%s", code, &b.stderr)
	}
	a.waitStderr(t, "B's disconnection", `"event":"disconnected"`, "DISCONNECT_REASON_SHUTDOWN")
	if code := a.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
		t.Fatalf("A exited %d after SIGTERM; stderr:\n%s", code, &a.stderr)
	}
}

func TestBinaryBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--no-such-flag"},
		{"run", "--listen", "127.0.0.1"},
		{"run", "--max-outbound", "many"},
		{"ping"},
		{"keygen"},
		{"nonsense"},
	} {
		code, out, errOut := runBinary(t, args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
		if out != "" || errOut == "" {
			t.Errorf("%q: stdout %q, stderr %q: want the message on stderr only", args, out, errOut)
		}
	}
}
