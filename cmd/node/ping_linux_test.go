package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

// A ping that gets no reply within --timeout fails the command (exit 1), even when it is the only one: the node
// pinged is frozen (SIGSTOP) once connected, so its kernel still holds the connection but nothing answers.
func TestPingWithoutAReplyFails(t *testing.T) {
	target := start(t, "run", "--listen", "127.0.0.1:0", "--api", "off")
	addr := target.listening(t)
	pid := target.cmd.Process.Pid
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	freeze := func() {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		// Stopped once /proc says so ("T"): the signal is delivered asynchronously.
		_ = testkit.Poll(context.Background(), 5*time.Second, func() bool {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			_, rest, _ := strings.Cut(string(b), ") ")
			return err == nil && strings.HasPrefix(rest, "T")
		})
	}
	out := &callOn{want: "connected to", do: freeze}
	o := pingOptions{count: 1, timeout: 300 * time.Millisecond, network: actors.DefaultConfig().NetworkID}
	err := ping(context.Background(), addr.String(), o, out)
	if err == nil || !strings.Contains(err.Error(), "1 of 1 pings") || !strings.Contains(out.String(), "1 sent, 0 received, 100% loss") {
		t.Fatalf("ping of a frozen node: %v, stdout:\n%s\nwant the lost ping reported as a failure", err, out)
	}
}
