package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/testkit"
)

func newSimCmd() *cobra.Command {
	var (
		sc      testkit.BroadcastScenario
		asJSON  bool
		html    string
		timeout time.Duration
		prof    profiles
		verify  bool
		knobs   gossipKnobs
	)
	cmd := &cobra.Command{
		Use:   "sim [flags]",
		Short: "Run a network of nodes in this process and measure topic broadcast (or another scenario)",
		Long: "sim starts -n nodes in this process that join over the real bootstrap and discovery path (bootnodes: " +
			"node 0 and two random earlier nodes), each keeping -degree outbound connections; every node subscribes to one " +
			"topic and -messages messages of -size bytes are published from random nodes every -interval. Links " +
			"have -latency one way: on the in-memory transport (default, which also emulates -jitter and -loss) and " +
			"with -transport tcp, real sockets on 127.0.0.1 whose every write reaches the socket -latency after it was made. -kill kills that share of the nodes halfway through. It prints a " +
			"table, or with --json one JSON object: delivery_ratio, p50/p90/p99/p100_ms (median over messages of " +
			"the delay until that share of the other live nodes had the message), dup_per_delivery, " +
			"wire_bytes_per_delivery, cpu_us_per_delivery, peak_rss_mib, setup_s and more. Single-dash long " +
			"flags (-degree 8) work too. --html FILE also writes a self-contained HTML page with charts of the run " +
			"(delay CDF, hops, each message's delivery over time). Other scenarios are subcommands.",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			if sc.N < 2 || sc.Degree < 1 || sc.Messages < 1 || sc.Size < 8 || sc.Interval <= 0 || sc.Settle < 0 || sc.Idle < 0 || timeout <= 0 {
				return usagef("want -n >= 2, -degree >= 1, -messages >= 1, -size >= 8, -interval > 0, -settle >= 0, -idle >= 0, -timeout > 0")
			}
			if sc.Latency <= 0 { // the scenario takes 0 for its default, 20ms
				return usagef("want -latency > 0 (1us for links with next to none)")
			}
			if sc.Transport != "mem" && sc.Transport != "tcp" {
				return usagef("-transport %q: want mem or tcp", sc.Transport)
			}
			if sc.Kill < 0 || sc.Kill >= 1 || sc.Loss < 0 || sc.Loss > 1 || sc.MinReady <= 0 || sc.MinReady > 1 {
				return usagef("want 0 <= -kill < 1, 0 <= -loss <= 1 and 0 < -min-ready <= 1")
			}
			if sc.KillRoot && sc.Kill == 0 {
				return usagef("-kill-root needs -kill")
			}
			if sc.Publishers < 0 || sc.Publishers > sc.N || sc.Heartbeat < 0 {
				return usagef("want 0 <= -publishers <= -n and -heartbeat >= 0")
			}
			if knobs.publishFanout < 0 || knobs.dlazy < 0 || knobs.meshGossipBeats < 1 {
				return usagef("want -publish-fanout >= 0, -dlazy >= 0 and -mesh-gossip-beats >= 1")
			}
			if sc.Subscribers < 0 || sc.Subscribers == 1 || sc.Subscribers > sc.N || (sc.Subscribers > 0 && sc.Publishers > sc.Subscribers) {
				return usagef("want -subscribers 0 (every node) or 2 to -n, and -publishers no more than -subscribers")
			}
			if sc.Transport == "tcp" && (sc.Jitter != 0 || sc.Loss != 0) {
				return usagef("-jitter and -loss are emulated by the in-memory transport only (-transport mem)")
			}
			if err := sc.Check(); err != nil { // the rest: a kill that leaves too few nodes, a payload over the limit
				return usagef("%v", err)
			}
			if err := prof.check(); err != nil {
				return usagef("%v", err)
			}
			if html != "" {
				if err := checkOutputPath(html); err != nil {
					return usagef("--html: %v", err)
				}
			}
			sc.ReadyTimeout = timeout
			sc.Configure = func(_ int, cfg *actors.Config) {
				cfg.Gossip.VerifySignatures = verify
				knobs.apply(&cfg.Gossip.Router)
			}
			var after func(testkit.BroadcastReport) error
			if html != "" {
				after = func(rep testkit.BroadcastReport) error {
					err := writeFileAtomic(html, func(w io.Writer) error {
						return writeHTMLReport(w, rep, broadcastParams(sc, verify, rep))
					})
					if err != nil {
						return fmt.Errorf("--html: %w", err)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "report written to %s\n", html)
					return nil
				}
			}
			// The CPU profile covers what the figures measure: the publications and their deliveries.
			windowProf := profiles{cpu: prof.cpu}
			prof.cpu = ""
			var stopProf func()
			sc.Window = func(start bool, _ []*actors.Node) {
				if !start {
					if stopProf != nil {
						stopProf()
					}
					return
				}
				var err error
				if stopProf, err = windowProf.start(); err != nil {
					fmt.Fprintln(cmd.ErrOrStderr(), err)
				}
			}
			return simulate(cmd, &prof, asJSON, func(progress func(string), beforeClose func([]*actors.Node)) (testkit.BroadcastReport, error) {
				sc.Progress, sc.BeforeClose = progress, beforeClose
				return testkit.RunBroadcast(cmd.Context(), sc)
			}, broadcastRows, after)
		}),
	}
	f := cmd.Flags()
	f.IntVarP(&sc.N, "nodes", "n", 200, "number of nodes")
	f.IntVar(&sc.Degree, "degree", 8, "outbound connections each node keeps")
	f.IntVar(&sc.Messages, "messages", 50, "messages published")
	f.IntVar(&sc.Size, "size", 1024, "payload bytes per message")
	f.DurationVar(&sc.Interval, "interval", 100*time.Millisecond, "gap between publications")
	f.DurationVar(&sc.Latency, "latency", 20*time.Millisecond, "one-way latency of every link (either transport)")
	f.DurationVar(&sc.Jitter, "jitter", 0, "extra random one-way delay of every link, up to this much (mem transport)")
	f.Float64Var(&sc.Loss, "loss", 0, "share of writes delayed by a retransmission (mem transport)")
	f.StringVar(&sc.Transport, "transport", "mem", "mem (in-memory, emulated links) or tcp (sockets on 127.0.0.1)")
	f.Float64Var(&sc.Kill, "kill", 0, "share of nodes killed halfway through the publications")
	f.BoolVar(&sc.KillRoot, "kill-root", false, "make -kill take the root of the topic's tree (the one most nodes follow) in place of one of the drawn nodes: the worst case of a kill")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "longest wait for every node to join the topic")
	f.Float64Var(&sc.MinReady, "min-ready", 1, "share of nodes that must have joined the topic when -timeout ends to go on (the others count as missed deliveries)")
	f.DurationVar(&sc.Settle, "settle", 40*time.Second, "time the network runs after the meshes formed, before -idle "+
		"and the first publication, so that the join's discovery traffic has calmed down: a young routing table is refreshed 2, 6, "+
		"14 s... after its join until its neighbourhood stops changing (the nodes of a sim join within seconds, so those refreshes "+
		"come in bursts), then every 5 minutes, each wait drawn from 2.5-7.5 minutes")
	f.DurationVar(&sc.Idle, "idle", 5*time.Second, "time the settled network's CPU and gossip RPCs are measured with nothing "+
		"published, before the first publication: its CPU rate splits cpu_us_per_delivery into the nodes' background "+
		"upkeep and the deliveries' marginal cost, its RPC rates are what -after subtracts (0: not measured)")
	f.DurationVar(&sc.After, "after", 3*time.Second, "time the CPU and gossip RPCs are measured once the deliveries are in, "+
		"with -idle: beyond the idle network's, what the deliveries leave for the heartbeats after the window (their last "+
		"IHAVE announcements, up to ~2.5 s after it); the RPCs are added to ihave, rpcs and control_rpcs_per_delivery "+
		"(and reported as after_ihave_per_delivery), the CPU reported apart as after_cpu_us_per_delivery (0: not "+
		"measured, and those figures leave the tail out); wire_bytes_per_delivery is the window's alone")
	f.Uint64Var(&sc.Seed, "seed", 0, "seed of publishers, payloads and kills (0: random)")
	f.IntVar(&sc.Publishers, "publishers", 0, "publish from this many nodes drawn at the start (a blockchain's "+
		"validators, say), each message from a random live one of them (0: from any node)")
	f.IntVar(&sc.Subscribers, "subscribers", 0, "join the topic on this many nodes drawn at the start, the others "+
		"only part of the network: with few, each has few topic peers among its connections and finds the others "+
		"through the DHT (topic discovery); deliveries and delays are the subscribers' (0: every node)")
	f.DurationVar(&sc.Heartbeat, "heartbeat", 0, "every relay's heartbeat, the rhythm of its IHAVE gossip, mesh upkeep "+
		"and tree reports, whose periods are counted in heartbeats (0: the relay's default, "+
		actors.DefaultConfig().Gossip.Router.HeartbeatInterval.String()+")")
	knobs.flags(f)
	f.BoolVar(&verify, "verify", true, "check every received message's origin signature (the relay's default, "+
		"VerifySignatures); -verify=false measures the stack without that check")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of a table")
	f.StringVar(&html, "html", "", "also write an HTML page with charts of the run (delay CDF, hops, delivery over time) to this file")
	prof.flags(f)
	f.Lookup("cpuprofile").Usage = "write a CPU profile of the measured window (the publications and their deliveries) to this file (go tool pprof)"
	cmd.AddCommand(newSimDiscoveryCmd())
	return cmd
}

// simulate runs a scenario with the profiles of the command line, progress lines on stderr (not with --json)
// and a heap profile taken before the nodes close, then prints its report: one JSON object, or a table of rows.
// after, if not nil, is called with the report once it is printed.
func simulate[R any](cmd *cobra.Command, prof *profiles, asJSON bool,
	run func(progress func(string), beforeClose func([]*actors.Node)) (R, error), rows func(R) [][2]string,
	after func(R) error) error {
	var progress func(string)
	if !asJSON {
		progress = func(s string) { fmt.Fprintf(cmd.ErrOrStderr(), "sim: %s\n", s) }
	}
	stop, err := prof.start()
	if err != nil {
		return err
	}
	rep, err := run(progress, func([]*actors.Node) { prof.heap(cmd.ErrOrStderr()) })
	stop()
	if err != nil {
		return err
	}
	if err := printReport(cmd.OutOrStdout(), rep, asJSON, rows); err != nil {
		return err
	}
	if after != nil {
		return after(rep)
	}
	return nil
}

// printReport prints a report as one JSON object, or as a table of rows.
func printReport[R any](w io.Writer, rep R, asJSON bool, rows func(R) [][2]string) error {
	if asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range rows(rep) {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

// broadcastParams lists the parameters of a broadcast run as node sim flags, the seed being the one the run used.
func broadcastParams(sc testkit.BroadcastScenario, verify bool, rep testkit.BroadcastReport) []reportParam {
	seed := sc.Seed
	if rep.Detail != nil {
		seed = rep.Detail.Seed
	}
	ps := []reportParam{
		{"n", strconv.Itoa(sc.N)},
		{"degree", strconv.Itoa(sc.Degree)},
		{"messages", strconv.Itoa(sc.Messages)},
		{"size", strconv.Itoa(sc.Size)},
		{"interval", sc.Interval.String()},
		{"transport", sc.Transport},
	}
	if sc.Transport == "mem" {
		ps = append(ps, reportParam{"latency", sc.Latency.String()}, reportParam{"jitter", sc.Jitter.String()},
			reportParam{"loss", strconv.FormatFloat(sc.Loss, 'g', -1, 64)})
	}
	return append(ps,
		reportParam{"subscribers", strconv.Itoa(sc.Subscribers)},
		reportParam{"kill", strconv.FormatFloat(sc.Kill, 'g', -1, 64)},
		reportParam{"settle", sc.Settle.String()},
		reportParam{"idle", sc.Idle.String()},
		reportParam{"after", sc.After.String()},
		reportParam{"verify", strconv.FormatBool(verify)},
		reportParam{"heartbeat", time.Duration(rep.HeartbeatMs * float64(time.Millisecond)).String()},
		reportParam{"publish-fanout", strconv.Itoa(rep.PublishFanout)},
		reportParam{"dlazy", strconv.Itoa(rep.Dlazy)},
		reportParam{"mesh-gossip-beats", strconv.Itoa(rep.MeshGossipBeats)},
		reportParam{"min-ready", strconv.FormatFloat(sc.MinReady, 'g', -1, 64)},
		reportParam{"timeout", sc.ReadyTimeout.String()},
		reportParam{"seed", strconv.FormatUint(seed, 10)},
	)
}

func broadcastRows(r testkit.BroadcastReport) [][2]string {
	pct := func(v float64) string {
		if v < 0 {
			return "not reached"
		}
		return fmt.Sprintf("%.1f", v)
	}
	return [][2]string{
		{"nodes / degree / transport", fmt.Sprintf("%d / %d / %s", r.N, r.Degree, r.Transport)},
		{"messages x size / interval", fmt.Sprintf("%d x %d B / %.0f ms", r.Messages, r.Size, r.IntervalM)},
		{"link latency", fmt.Sprintf("%.1f ms", r.LatencyMs)},
		{"heartbeat / publish fanout / Dlazy / mesh gossip beats", fmt.Sprintf("%.0f ms / %d / %d / %d", r.HeartbeatMs,
			r.PublishFanout, r.Dlazy, r.MeshGossipBeats)},
		{"killed", fmt.Sprint(r.Killed)},
		{"subscribers", fmt.Sprintf("%d of %d", r.Subscribers, r.N)},
		{"setup (nodes in the topic)", fmt.Sprintf("%.2f s (%.1f %%)", r.SetupS, 100*r.ReadyRatio)},
		{"topic ready after the subscriptions", fmt.Sprintf("%.2f s", r.TopicReadyS)},
		{"published", fmt.Sprintf("%d of %d", r.Published, r.Messages)},
		{"delivery ratio", fmt.Sprintf("%.4f", r.DeliveryRatio)},
		{"delay p50 / p90 / p99 / p100 (ms)", fmt.Sprintf("%s / %s / %s / %s", pct(r.P50Ms), pct(r.P90Ms), pct(r.P99Ms), pct(r.P100Ms))},
		{"messages slower than twice the p100", fmt.Sprint(r.SlowMessages)},
		{"hops mean / max", fmt.Sprintf("%.2f / %d", r.MeanHops, r.MaxHops)},
		{"duplicates per delivery", fmt.Sprintf("%.3f", r.DupPerDelivery)},
		{"IHAVE / IWANT ids per delivery", ihaveRow(r)},
		{"signatures checked per delivery", fmt.Sprintf("%.3f", r.VerifiedPerDelivery)},
		{"gossip RPCs per delivery", rpcRow(r)},
		{"wire bytes per delivery", fmt.Sprintf("%.0f", r.WireBytesPerDelivery)},
		{"CPU per delivery", cpuRow(r)},
		{"heap allocated per delivery", fmt.Sprintf("%.0f B in %.0f objects (%d GCs)", r.AllocBytesPerDelivery, r.AllocsPerDelivery, r.GCCycles)},
		{"peak RSS (per node)", fmt.Sprintf("%.1f MiB (%.2f MiB)", r.PeakRSSMiB, r.PeakRSSPerNodeMiB)},
	}
}

// cpuRow is the table's CPU per delivery, split into the background and the marginal cost when the idle network
// was measured.
func cpuRow(r testkit.BroadcastReport) string {
	if r.IdleCPUUsPerNodeS == 0 {
		return fmt.Sprintf("%.1f us", r.CPUUsPerDelivery)
	}
	row := fmt.Sprintf("%.1f us (background %.1f + marginal %.1f; idle network %.0f us per node-second)",
		r.CPUUsPerDelivery, r.BackgroundCPUUsPerDelivery, r.MarginalCPUUsPerDelivery, r.IdleCPUUsPerNodeS)
	if r.AfterMeasured {
		row += fmt.Sprintf("; %.1f us more after the window", r.AfterCPUUsPerDelivery)
	}
	return row
}

// ihaveRow is the table's IHAVE and IWANT ids per delivery, with the IHAVE ids sent after the window when that
// time was measured.
func ihaveRow(r testkit.BroadcastReport) string {
	if !r.AfterMeasured {
		return fmt.Sprintf("%.2f / %.3f", r.IHavePerDelivery, r.IWantPerDelivery)
	}
	return fmt.Sprintf("%.2f (%.2f after the window) / %.3f", r.IHavePerDelivery, r.AfterIHavePerDelivery, r.IWantPerDelivery)
}

// rpcRow is the table's gossip RPCs per delivery, with those that carried control only and, when the idle network
// was measured, its rate.
func rpcRow(r testkit.BroadcastReport) string {
	row := fmt.Sprintf("%.2f (control only %.2f)", r.RPCsPerDelivery, r.ControlRPCsPerDelivery)
	if r.IdleCPUUsPerNodeS == 0 {
		return row
	}
	return row + fmt.Sprintf("; idle network %.1f per node-second", r.IdleRPCsPerNodeS)
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
			if sc.N < 2 || sc.Lookups < 1 || sc.Workers < 1 || sc.Fraction <= 0 || sc.Fraction > 1 || timeout <= 0 {
				return usagef("want -n >= 2, --lookups >= 1, --workers >= 1, 0 < --fraction <= 1, --timeout > 0")
			}
			if sc.Transport != "tcp" && sc.Transport != "mem" || sc.Latency < 0 || sc.Latency > 0 && sc.Transport != "mem" {
				return usagef("want --transport tcp or mem, and --latency >= 0 with mem only")
			}
			if err := prof.check(); err != nil {
				return usagef("%v", err)
			}
			sc.ConvergeTimeout = timeout
			return simulate(cmd, &prof, asJSON, func(progress func(string), beforeClose func([]*actors.Node)) (testkit.DiscoveryReport, error) {
				sc.Progress, sc.BeforeClose = progress, beforeClose
				return testkit.RunDiscovery(cmd.Context(), sc)
			}, discoveryRows, nil)
		}),
	}
	f := cmd.Flags()
	f.IntVarP(&sc.N, "nodes", "n", 200, "number of nodes")
	f.IntVar(&sc.Lookups, "lookups", 500, "lookups measured after convergence")
	f.IntVar(&sc.Workers, "workers", 8, "lookups run in parallel")
	f.Float64Var(&sc.Fraction, "fraction", 0.95, "share of its true k closest each table must hold to count as converged")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "longest wait for convergence")
	f.Uint64Var(&sc.Seed, "seed", 0, "seed of the lookup choices (0: random)")
	f.StringVar(&sc.Transport, "transport", "tcp", "tcp (sockets on 127.0.0.1) or mem (in-memory, no open-file limit)")
	f.DurationVar(&sc.Latency, "latency", 0, "one-way latency of every link (mem transport)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object instead of a table")
	prof.flags(f)
	return cmd
}

func discoveryRows(r testkit.DiscoveryReport) [][2]string {
	converge := "not converged"
	if r.Converged {
		converge = fmt.Sprintf("%.2f s", r.ConvergeS)
	}
	return [][2]string{
		{"nodes / transport", fmt.Sprintf("%d / %s", r.N, r.Transport)},
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
		{"dials until convergence (mem)", fmt.Sprint(r.DialsToConverge)},
		{"table evictions: liveness checks / lookups", fmt.Sprintf("%d / %d", r.Evictions, r.LookupEvictions)},
	}
}
