// Command node is the actormesh full peer: it creates identities (keygen, id), runs a node (run) and checks that a
// peer answers (ping). See README.md at the repository root.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, restore the default handling so that a second one ends the process at once.
	go func() { <-ctx.Done(); stop() }()
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
