package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

func newSimCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run a network of nodes in this process and measure it",
		Long: "sim starts a network of real nodes on 127.0.0.1 in this process and reports its figures. " +
			"Scenarios are subcommands.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_ = cmd.Usage()
			return usagef("missing scenario (see the commands above)")
		},
	}
	cmd.AddCommand(newSimDiscoveryCmd())
	return cmd
}

func newSimDiscoveryCmd() *cobra.Command {
	var (
		sc      testkit.DiscoveryScenario
		asJSON  bool
		timeout time.Duration
		prof    profiles
	)
	cmd := &cobra.Command{
		Use:   "discovery [flags]",
		Short: "N nodes join from one bootnode; measure convergence and lookups",
		Long: "discovery starts -n nodes that join through node 0 (their only bootnode) over the real bootstrap " +
			"path, waits until every routing table holds --fraction of its true k closest nodes, then looks up " +
			"random nodes from random nodes. It prints a table, or with --json one JSON object: setup_s, " +
			"converge_s (since the first node started), lookup_success, lookup_p50_ms/p99_ms, hops_p50/p99 (lookup " +
			"rounds; hops_bound is ceil(log2(n)/2)+1), requests_per_lookup, peak_rss_mib and per node, cpu_s.",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if sc.N < 2 || sc.Lookups < 0 || sc.Workers < 1 || sc.Fraction <= 0 || sc.Fraction > 1 || timeout <= 0 {
				return usagef("want -n >= 2, --lookups >= 0, --workers >= 1, 0 < --fraction <= 1, --timeout > 0")
			}
			sc.ConvergeTimeout = timeout
			if !asJSON {
				sc.Progress = func(s string) { fmt.Fprintf(cmd.ErrOrStderr(), "sim: %s\n", s) }
			}
			stop, err := prof.start()
			if err != nil {
				return err
			}
			sc.BeforeClose = func([]*actors.Node) { prof.heap() }
			rep, err := testkit.RunDiscovery(cmd.Context(), sc)
			stop()
			if err != nil {
				return err
			}
			return printDiscovery(cmd.OutOrStdout(), rep, asJSON)
		}),
	}
	f := cmd.Flags()
	f.IntVarP(&sc.N, "nodes", "n", 200, "number of nodes")
	f.IntVar(&sc.Lookups, "lookups", 500, "lookups measured after convergence")
	f.IntVar(&sc.Workers, "workers", 8, "lookups run in parallel")
	f.Float64Var(&sc.Fraction, "fraction", 0.95, "share of its true k closest each table must hold to count as converged")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "longest wait for convergence")
	f.Uint64Var(&sc.Seed, "seed", 0, "seed of the lookup choices (0: random)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of a table")
	prof.flags(f)
	return cmd
}

func printDiscovery(w io.Writer, r testkit.DiscoveryReport, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	converge := "not converged"
	if r.Converged {
		converge = fmt.Sprintf("%.2f s", r.ConvergeS)
	}
	rows := [][2]string{
		{"nodes", fmt.Sprint(r.N)},
		{"k / alpha", fmt.Sprintf("%d / %d", r.K, r.Alpha)},
		{"setup", fmt.Sprintf("%.2f s", r.SetupS)},
		{"convergence", converge},
		{"min share of true k closest held", fmt.Sprintf("%.3f", r.MinClosestShare)},
		{"kept outbound min / mean", fmt.Sprintf("%d / %.1f", r.KeptOutboundMin, r.KeptOutboundMean)},
		{"lookups", fmt.Sprint(r.Lookups)},
		{"lookup success", fmt.Sprintf("%.4f", r.LookupSuccess)},
		{"lookup latency p50 / p99", fmt.Sprintf("%.2f / %.2f ms", r.LatencyP50Ms, r.LatencyP99Ms)},
		{"hops p50 / p99 / max (bound)", fmt.Sprintf("%d / %d / %d (%d)", r.HopsP50, r.HopsP99, r.HopsMax, r.HopsBound)},
		{"requests per lookup", fmt.Sprintf("%.2f", r.RequestsPerLookup)},
		{"peak RSS (per node)", fmt.Sprintf("%.1f MiB (%.2f MiB)", r.PeakRSSMiB, r.PeakRSSPerNodeMiB)},
		{"CPU", fmt.Sprintf("%.1f s", r.CPUS)},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}
