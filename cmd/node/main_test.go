package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/actormesh/actormesh/testkit"
	"go.uber.org/goleak"
)

// binDir holds the node binary built for the end-to-end tests.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "actormesh-node-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// No test binds the admin API's default port, which another test or a developer's node may hold: every
	// `node run` of the tests, in process or as a subprocess (which inherits the environment), gets a free port
	// unless it passes --api.
	if err := os.Setenv("ACTORMESH_API", "127.0.0.1:0"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// In-process tests start nodes; none may leave a goroutine behind.
		if err := goleak.Find(
			// protoactor's dead-letter throttle runs a one-shot timer goroutine.
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottleWithLogger.func1"),
			goleak.IgnoreTopFunction("github.com/asynkron/protoactor-go/actor.NewThrottle.func1"),
		); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// nodeBinary builds ./cmd/node once per test run (with -race when the tests run with it) and returns its path.
func nodeBinary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			build.err = fmt.Errorf("go tool not found: %w", err)
			return
		}
		build.path = filepath.Join(binDir, "node")
		args := []string{"build", "-o", build.path}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goTool, append(args, ".")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			build.err = fmt.Errorf("go build: %w\n%s", err, out.String())
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// syncBuffer is a testkit.SyncBuffer that can tell its first line.
type syncBuffer struct{ testkit.SyncBuffer }

// firstLine returns the first complete line written, if any.
func (b *syncBuffer) firstLine() (string, bool) {
	s := b.String()
	line, _, ok := strings.Cut(s, "\n")
	return line, ok
}
