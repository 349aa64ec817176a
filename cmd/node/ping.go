package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
)

// pingOptions are the flags of `node ping`.
type pingOptions struct {
	count    int
	interval time.Duration
	timeout  time.Duration
	network  string
}

func newPingCmd() *cobra.Command {
	o := pingOptions{}
	cmd := &cobra.Command{
		Use:   "ping ADDR",
		Short: "Connect to a node (<id>@host:port) and measure round-trip times",
		Long: "ping starts a node that does not listen, connects to ADDR (checking that the node there has the " +
			"given id), sends --count pings and prints each round-trip time and a summary. It exits 1 when the " +
			"node cannot be reached or a ping gets no reply.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("want exactly one argument, the node's address <id>@host:port; got %d", len(args))
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			return ping(cmd.Context(), args[0], o, cmd.OutOrStdout())
		}),
	}
	f := cmd.Flags()
	f.IntVar(&o.count, "count", 3, "number of pings")
	f.DurationVar(&o.interval, "interval", 500*time.Millisecond, "wait between pings (at least 50ms past 100 pings: "+
		"a node answers 20 pings a second, 100 at once)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "limit for connecting and for each ping")
	f.StringVar(&o.network, "network", actors.DefaultConfig().NetworkID, "network id of the node to ping")
	return cmd
}

// ping connects to target and pings it o.count times, printing each round trip and a summary to stdout.
func ping(ctx context.Context, target string, o pingOptions, stdout io.Writer) error {
	addr, err := session.ParsePeerAddr(target)
	if err != nil {
		return &usageError{err}
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	node, err := actors.NewNode(cfg)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := node.Start(ctx); err != nil {
		return err
	}

	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, o.timeout)
	err = node.Connect(cctx, addr, false)
	cancel()
	if err != nil {
		return explainDialError(err, addr, o)
	}
	short := addr.ID.Short()
	fmt.Fprintf(stdout, "connected to %s at %s in %v\n", short, addr.Addr, roundRTT(time.Since(start)))

	var rtts []time.Duration
	sent, lost := 0, 0
	var fatal error
loop:
	for i := 0; i < o.count; i++ {
		if i > 0 && o.interval > 0 {
			t := time.NewTimer(o.interval)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				break loop
			}
		}
		sent++
		pctx, cancel := context.WithTimeout(ctx, o.timeout)
		rtt, err := node.Ping(pctx, addr.ID)
		cancel()
		switch {
		case err == nil:
			rtts = append(rtts, rtt)
			fmt.Fprintf(stdout, "reply from %s: time=%v\n", short, roundRTT(rtt))
		case ctx.Err() != nil:
			sent--
			break loop
		case errors.Is(err, actors.ErrRequestTimeout):
			lost++
			fmt.Fprintf(stdout, "no reply from %s within %v\n", short, o.timeout)
		default:
			lost++
			fatal = err
			break loop
		}
	}
	printSummary(stdout, short, sent, rtts)
	switch {
	case fatal != nil:
		return fmt.Errorf("ping %s: %w", short, fatal)
	case lost > 0:
		return fmt.Errorf("%d of %d pings to %s got no reply within %v", lost, sent, short, o.timeout)
	case ctx.Err() != nil && sent == 0:
		return errors.New("interrupted")
	}
	return nil
}

// config checks the flags and returns the config of the pinging node: a pure client, which neither listens nor
// runs discovery (no routing table, no bootstrapper).
func (o pingOptions) config() (actors.Config, error) {
	cfg := actors.DefaultConfig()
	switch {
	case o.count < 1:
		return cfg, usagef("--count must be at least 1")
	case o.interval < 0:
		return cfg, usagef("--interval must not be negative")
	case o.count > actors.PingBurst && o.interval < time.Second/actors.PingRate:
		// Past them the peer leaves pings unanswered: a healthy node looked lossy.
		return cfg, usagef("--interval %v with --count %d: a node answers at most %d pings a second (%d at once); "+
			"want --interval >= %v or --count <= %d", o.interval, o.count, actors.PingRate, actors.PingBurst,
			time.Second/actors.PingRate, actors.PingBurst)
	case o.timeout <= 0:
		return cfg, usagef("--timeout must be positive")
	case o.network == "":
		return cfg, usagef("--network must not be empty")
	}
	cfg.ListenAddr = ""
	cfg.DisableDiscovery = true
	cfg.NetworkID = o.network
	cfg.DialTimeout, cfg.HandshakeTimeout, cfg.RequestTimeout = o.timeout, o.timeout, o.timeout
	cfg.Logger = zerolog.Nop()
	return cfg, nil
}

// roundRTT keeps round-trip times readable: microsecond precision.
func roundRTT(d time.Duration) time.Duration {
	if d < time.Microsecond {
		return d
	}
	return d.Round(time.Microsecond)
}

func printSummary(w io.Writer, short string, sent int, rtts []time.Duration) {
	loss := 0.0
	if sent > 0 {
		loss = 100 * float64(sent-len(rtts)) / float64(sent)
	}
	fmt.Fprintf(w, "--- %s ping statistics ---\n%d sent, %d received, %.0f%% loss\n", short, sent, len(rtts), loss)
	if len(rtts) == 0 {
		return
	}
	lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
	for _, r := range rtts {
		lo, hi, sum = min(lo, r), max(hi, r), sum+r
	}
	fmt.Fprintf(w, "rtt min/avg/max = %v/%v/%v\n", roundRTT(lo), roundRTT(sum/time.Duration(len(rtts))), roundRTT(hi))
}

// explainDialError turns a failed Connect into one line that says what went wrong.
func explainDialError(err error, addr session.PeerAddr, o pingOptions) error {
	switch {
	case errors.Is(err, session.ErrWrongPeer):
		return fmt.Errorf("id mismatch: the node at %s is not %s (%w)", addr.Addr, addr.ID.Short(), err)
	case errors.Is(err, session.ErrNetworkMismatch):
		return fmt.Errorf("network mismatch: the node at %s is not on network %q (%w)", addr.Addr, o.network, err)
	case errors.Is(err, session.ErrVersionMismatch):
		return fmt.Errorf("protocol version mismatch with the node at %s (%w)", addr.Addr, err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connection refused by %s: no node is listening there", addr.Addr)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Errorf("%s is unreachable (%w)", addr.Addr, err)
	case errors.Is(err, session.ErrHandshakeTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timeout: no answer from %s within %v", addr.Addr, o.timeout)
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, session.ErrHandshake):
		return fmt.Errorf("handshake with %s failed: is it an actormesh node? (%w)", addr.Addr, err)
	default:
		return fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
}
