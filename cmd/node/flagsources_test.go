package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// sourcesFlags are the flags of the throwaway command of the applyFlagSources tests.
type sourcesFlags struct {
	dataDir    string
	maxInbound int
	verbose    bool
	timeout    time.Duration
	ratio      float64
	peers      []string // StringArray
	topics     []string // StringSlice
}

// runSources runs a throwaway command (flags of every kind, applyFlagSources with prefix AMTEST as its PreRunE)
// with args and returns the flag values its RunE saw.
func runSources(t *testing.T, args ...string) (sourcesFlags, error) {
	t.Helper()
	var o, seen sourcesFlags
	cmd := &cobra.Command{
		Use:           "throwaway",
		Args:          cobra.NoArgs,
		PreRunE:       func(cmd *cobra.Command, _ []string) error { return applyFlagSources(cmd, "AMTEST", "config") },
		RunE:          func(*cobra.Command, []string) error { seen = o; return nil },
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", "default-dir", "")
	f.IntVar(&o.maxInbound, "max-inbound", 1, "")
	f.BoolVar(&o.verbose, "verbose", false, "")
	f.DurationVar(&o.timeout, "timeout", time.Second, "")
	f.Float64Var(&o.ratio, "ratio", 0.5, "")
	f.StringArrayVar(&o.peers, "peer", []string{"default-peer"}, "")
	f.StringSliceVar(&o.topics, "topic", nil, "")
	f.String("config", "", "")
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SetArgs(append([]string{}, args...))
	err := cmd.Execute()
	return seen, err
}

// writeConfig writes a config file into a fresh temporary directory and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "node.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantUsageError checks that err is a usageError whose message has every one of want.
func wantUsageError(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	var ue *usageError
	if !errors.As(err, &ue) {
		t.Errorf("%s: error %v (%T), want a usage error", what, err, err)
		return
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not mention %q", what, err, w)
		}
	}
}

func TestFlagSourcesPrecedence(t *testing.T) {
	file := writeConfig(t, `
data-dir = "file-dir"
max-inbound = 9
verbose = true
timeout = "10s"
ratio = 0.25
peer = ["file-peer"]
`)
	// Each flag set by the command line, the environment and the file (when given) takes the first of them.
	t.Setenv("AMTEST_CONFIG", file)
	t.Setenv("AMTEST_DATA_DIR", "env-dir")
	t.Setenv("AMTEST_MAX_INBOUND", "7")
	t.Setenv("AMTEST_PEER", "env-peer-1,env-peer-2")
	got, err := runSources(t, "--data-dir", "cli-dir", "--peer", "cli-peer-1", "--peer", "cli-peer-2")
	if err != nil {
		t.Fatal(err)
	}
	if got.dataDir != "cli-dir" || !slices.Equal(got.peers, []string{"cli-peer-1", "cli-peer-2"}) {
		t.Errorf("command line: data-dir %q, peer %q; want cli-dir, [cli-peer-1 cli-peer-2]", got.dataDir, got.peers)
	}
	if got.maxInbound != 7 {
		t.Errorf("environment: max-inbound %d, want 7 (the file says 9)", got.maxInbound)
	}
	if !got.verbose || got.timeout != 10*time.Second || got.ratio != 0.25 {
		t.Errorf("file: verbose %v, timeout %v, ratio %v; want true, 10s, 0.25", got.verbose, got.timeout, got.ratio)
	}

	// The environment beats the file.
	got, err = runSources(t)
	if err != nil {
		t.Fatal(err)
	}
	if got.dataDir != "env-dir" || !slices.Equal(got.peers, []string{"env-peer-1", "env-peer-2"}) {
		t.Errorf("environment: data-dir %q, peer %q; want env-dir, [env-peer-1 env-peer-2]", got.dataDir, got.peers)
	}

	// The file beats the defaults; the command line's --config beats $AMTEST_CONFIG.
	t.Setenv("AMTEST_DATA_DIR", "")
	t.Setenv("AMTEST_PEER", "")
	t.Setenv("AMTEST_MAX_INBOUND", "")
	got, err = runSources(t, "--config", writeConfig(t, `data-dir = "other-file-dir"`))
	if err != nil {
		t.Fatal(err)
	}
	if got.dataDir != "other-file-dir" || got.maxInbound != 1 {
		t.Errorf("--config: data-dir %q, max-inbound %d; want other-file-dir and the default 1", got.dataDir, got.maxInbound)
	}

	// Nothing set: the defaults.
	t.Setenv("AMTEST_CONFIG", "")
	got, err = runSources(t)
	if err != nil {
		t.Fatal(err)
	}
	want := sourcesFlags{dataDir: "default-dir", maxInbound: 1, timeout: time.Second, ratio: 0.5, peers: []string{"default-peer"}}
	if got.dataDir != want.dataDir || got.maxInbound != want.maxInbound || got.verbose || got.timeout != want.timeout ||
		got.ratio != want.ratio || !slices.Equal(got.peers, want.peers) || len(got.topics) != 0 {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
}

func TestFlagSourcesEnvListsAreCommaSeparated(t *testing.T) {
	t.Setenv("AMTEST_PEER", " a@127.0.0.1:1 , b@127.0.0.1:2,,")
	t.Setenv("AMTEST_TOPIC", "blocks,txs")
	t.Setenv("AMTEST_VERBOSE", "true")
	t.Setenv("AMTEST_TIMEOUT", "1m30s")
	got, err := runSources(t)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.peers, []string{"a@127.0.0.1:1", "b@127.0.0.1:2"}) {
		t.Errorf("AMTEST_PEER gave %q, want [a@127.0.0.1:1 b@127.0.0.1:2] (the default replaced, items trimmed)", got.peers)
	}
	if !slices.Equal(got.topics, []string{"blocks", "txs"}) {
		t.Errorf("AMTEST_TOPIC gave %q, want [blocks txs]", got.topics)
	}
	if !got.verbose || got.timeout != 90*time.Second {
		t.Errorf("AMTEST_VERBOSE, AMTEST_TIMEOUT gave %v, %v; want true, 1m30s", got.verbose, got.timeout)
	}

	t.Setenv("AMTEST_MAX_INBOUND", "many")
	_, err = runSources(t)
	wantUsageError(t, "AMTEST_MAX_INBOUND=many", err, "AMTEST_MAX_INBOUND", `"many"`, "--max-inbound", "integer")
}

func TestFlagSourcesConfigArraysAndScalars(t *testing.T) {
	got, err := runSources(t, "--config", writeConfig(t, `
# every kind of value
data-dir = "/var/lib/actormesh"
max-inbound = 50
verbose = true
timeout = "1m"
ratio = 2.5
peer = "only@127.0.0.1:1"       # a scalar for a repeatable flag
topic = ["blocks", "txs"]
`))
	if err != nil {
		t.Fatal(err)
	}
	want := sourcesFlags{dataDir: "/var/lib/actormesh", maxInbound: 50, verbose: true, timeout: time.Minute,
		ratio: 2.5, peers: []string{"only@127.0.0.1:1"}, topics: []string{"blocks", "txs"}}
	if got.dataDir != want.dataDir || got.maxInbound != want.maxInbound || got.verbose != want.verbose ||
		got.timeout != want.timeout || got.ratio != want.ratio || !slices.Equal(got.peers, want.peers) ||
		!slices.Equal(got.topics, want.topics) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// An empty array empties a repeatable flag; integers are accepted where the flag parses them (a string flag).
	got, err = runSources(t, "--config", writeConfig(t, "peer = []\ndata-dir = 42\nmax-inbound = \"3\""))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.peers) != 0 || got.dataDir != "42" || got.maxInbound != 3 {
		t.Errorf("peer %q, data-dir %q, max-inbound %d; want [], 42, 3", got.peers, got.dataDir, got.maxInbound)
	}
}

func TestFlagSourcesConfigUnknownKey(t *testing.T) {
	file := writeConfig(t, "max-inbound = 3\nlisten-addr = \"127.0.0.1:0\"\n")
	_, err := runSources(t, "--config", file)
	wantUsageError(t, "unknown key", err, file, `"listen-addr"`)

	for _, text := range []string{`config = "other.toml"`, "help = true", "[data-dir]\nx = 1"} {
		_, err = runSources(t, "--config", writeConfig(t, text))
		wantUsageError(t, text, err, "config file")
	}
}

func TestFlagSourcesConfigSyntaxErrorNamesTheLine(t *testing.T) {
	file := writeConfig(t, "data-dir = \"/x\"\n\nmax-inbound = \n")
	_, err := runSources(t, "--config", file)
	wantUsageError(t, "syntax error", err, file, "line 3")
}

func TestFlagSourcesConfigBadValue(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{`max-inbound = "many"`, []string{`"max-inbound"`, `"many"`, "integer"}},
		{`max-inbound = 2.5`, []string{`"max-inbound"`, "2.5", "integer"}},
		{`verbose = "yes"`, []string{`"verbose"`, `"yes"`, "boolean"}},
		{`timeout = 10`, []string{`"timeout"`, "10", "duration"}},
		{`data-dir = ["a", "b"]`, []string{`"data-dir"`, "array"}},
		{`peer = ["a", ["b"]]`, []string{`"peer"`, "nested array"}},
		{`peer = [1979-05-27]`, []string{`"peer"`, "date"}},
	} {
		file := writeConfig(t, tc.text)
		_, err := runSources(t, "--config", file)
		wantUsageError(t, tc.text, err, append([]string{file}, tc.want...)...)
	}
}

func TestFlagSourcesConfigMissingFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "missing.toml")
	_, err := runSources(t, "--config", file)
	wantUsageError(t, "--config missing", err, file, "no such file")

	t.Setenv("AMTEST_CONFIG", file)
	_, err = runSources(t)
	wantUsageError(t, "AMTEST_CONFIG missing", err, file, "AMTEST_CONFIG")
}

func TestRunBadConfigFileExitsWithUsageCode(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		text string // "" for a missing file
		want string
	}{
		{"", "no such file"},
		{"listen = \"127.0.0.1:0\"\nbootnodes = []\n", `unknown key "bootnodes"`},
		{"listen = \"127.0.0.1:0\"\nlisten = \"127.0.0.1:1\"\n", "line 2"},
		{"max-inbound = \"many\"", `key "max-inbound" = "many": --max-inbound wants an integer`},
		{"listen = \"notanaddress\"", `--listen "notanaddress": want host:port`},
		{"listen = 5", `--listen "5": want host:port`}, // a TOML integer taken as the string flag's text
	} {
		file := filepath.Join(dir, "missing.toml")
		if tc.text != "" {
			file = writeConfig(t, tc.text)
		}
		code, out, errOut := call(t, "run", "--config", file)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.text, code, exitUsage, errOut)
			continue
		}
		if out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "--help") {
			t.Errorf("%q: stdout %q, stderr %q: want %q and a pointer to --help", tc.text, out, errOut, tc.want)
		}
		if !strings.Contains(errOut, "config file "+file) {
			t.Errorf("%q: stderr %q does not name the file", tc.text, errOut)
		}
	}
}

func TestRunEnvIsCheckedLikeTheFlags(t *testing.T) {
	t.Setenv("ACTORMESH_LISTEN", "notanaddress")
	code, out, errOut := call(t, "run")
	if code != exitUsage || out != "" || !strings.Contains(errOut, `environment variable ACTORMESH_LISTEN: --listen "notanaddress"`) {
		t.Errorf("ACTORMESH_LISTEN=notanaddress: exit %d, stdout %q, stderr %q; want %d and a message on --listen naming the variable",
			code, out, errOut, exitUsage)
	}
	// The same value on the command line is the command line's: no source named.
	code, _, errOut = call(t, "run", "--listen", "alsonotanaddress")
	if code != exitUsage || !strings.HasPrefix(errOut, `node run: --listen "alsonotanaddress"`) {
		t.Errorf("--listen alsonotanaddress: exit %d, stderr %q; want %d and the message alone", code, errOut, exitUsage)
	}

	t.Setenv("ACTORMESH_LISTEN", "127.0.0.1:0")
	t.Setenv("ACTORMESH_MAX_INBOUND", "many")
	code, out, errOut = call(t, "run")
	if code != exitUsage || out != "" || !strings.Contains(errOut, `ACTORMESH_MAX_INBOUND="many": --max-inbound wants an integer`) {
		t.Errorf("ACTORMESH_MAX_INBOUND=many: exit %d, stdout %q, stderr %q; want %d and a message naming the variable",
			code, out, errOut, exitUsage)
	}
}

// TestRunConfigFileAndEnvReachTheNode runs `node run` with ACTORMESH_CONFIG: the file's --data-dir and
// --log-format are used, and ACTORMESH_LISTEN wins over the file's unusable --listen.
func TestRunConfigFileAndEnvReachTheNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	file := writeConfig(t, "listen = \"notanaddress\"\nlog-format = \"json\"\ndata-dir = '"+dir+"'\n")
	t.Setenv("ACTORMESH_CONFIG", file)
	t.Setenv("ACTORMESH_LISTEN", "127.0.0.1:0")

	r := startInProcess(t)
	addr := r.listening(t)
	if code := r.stop(t); code != exitOK {
		t.Fatalf("run exited %d: %s", code, &r.stderr)
	}
	if !strings.HasPrefix(addr.Addr, "127.0.0.1:") {
		t.Errorf("listening on %s, want 127.0.0.1 from ACTORMESH_LISTEN", addr.Addr)
	}
	if !jsonLogHas(r.stderr.String(), "created a new identity", nil) {
		t.Errorf("stderr is not the JSON log of a node creating its identity:\n%s", &r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, dataDirKeyFile)); err != nil {
		t.Errorf("the file's data-dir holds no identity: %v", err)
	}
}

// An environment list of no items (a lone comma) empties the flag, and, being set, beats the config file.
func TestFlagSourcesAnEmptyEnvListBeatsTheFile(t *testing.T) {
	t.Setenv("AMTEST_CONFIG", writeConfig(t, `peer = ["file-peer"]`))
	t.Setenv("AMTEST_PEER", ",")
	got, err := runSources(t)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.peers) != 0 {
		t.Errorf("AMTEST_PEER=, with the file's peer = [\"file-peer\"]: peer %q, want none", got.peers)
	}
}
