package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes of the command.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed (bad key file, unreachable peer, ...)
	exitUsage = 2 // the command line is wrong (unknown command or flag, bad flag value)
)

// usageError marks an error in the command line; it exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// runError marks an error of a command that started running; it exits with exitError.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// runE adapts a command's function: the errors it returns are runtime failures (exit 1) unless they are usage
// errors. Everything cobra itself rejects before calling it (unknown commands or flags, missing required flags,
// wrong argument counts) is not wrapped, hence a usage error (exit 2).
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		var ue *usageError
		if err == nil {
			return nil
		}
		if errors.As(err, &ue) {
			return withFlagSource(cmd, err)
		}
		return &runError{err}
	}
}

// Main runs the command line args (without the program name) and returns the process exit code. Output for the
// user goes to stdout; logs and errors go to stderr. ctx ends a running node (its cancellation is what SIGINT and
// SIGTERM do in main).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	if args == nil {
		args = []string{} // cobra falls back to os.Args on nil
	}
	root.SetArgs(singleDashLongFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	path := "node"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	var re *runError
	if errors.As(err, &re) {
		fmt.Fprintf(stderr, "%s: %s\n", path, oneLine(re.err.Error()))
		return exitError
	}
	fmt.Fprintf(stderr, "%s: %s\nRun '%s --help' for usage.\n", path, oneLine(err.Error()), path)
	return exitUsage
}

// singleDashLongFlags rewrites "-name" and "-name=value" to "--name..." when name is a long flag of the command
// args run, so that Go-style single-dash flags (node sim -n 200 -degree 8) work as well as the POSIX form.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if a == "--" {
			copy(out[i:], args[i:])
			break
		}
		if len(a) < 3 || a[0] != '-' || a[1] == '-' {
			continue
		}
		name, _, _ := strings.Cut(a[1:], "=")
		if len(name) > 1 && cmd.Flags().Lookup(name) != nil {
			out[i] = "-" + a
		}
	}
	return out
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "node",
		Short: "actormesh peer-to-peer node",
		Long: "node runs an actormesh peer: an actor runtime that talks to other peers over authenticated, " +
			"encrypted connections (Noise XX).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SetOut(stderr)
			_ = cmd.Usage()
			return errors.New("missing command")
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newKeygenCmd(), newIDCmd(), newRunCmd(), newPingCmd(), newSimCmd(),
		newStatusCmd(), newPeersCmd(), newTopicPeersCmd(), newPublishCmd(), newSubscribeCmd(), newSendCmd())
	return root
}

// exactArgs is cobra.ExactArgs with a message that names the missing argument.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("want %d argument (%s), got %d", n, what, len(args))
		}
		return nil
	}
}
