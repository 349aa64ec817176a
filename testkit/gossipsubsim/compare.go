package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// compareConfig is a side-by-side comparison: for each seed, the scenario on gossipsub (this harness, in a process
// of its own) and then on actormesh (node sim), one after the other, so that both runs see the same hour of the host.
type compareConfig struct {
	sc        scenario
	seeds     []uint64
	harness   string   // this harness's binary
	node      string   // the actormesh node binary
	nodeExtra []string // more flags for node sim, as --settle 1s
	runTime   time.Duration
}

// comparedSeed is one seed's pair of runs.
type comparedSeed struct {
	Seed      uint64  `json:"seed"`
	Gossipsub report  `json:"gossipsub"`
	Actormesh report  `json:"actormesh"`
	CPURatio  float64 `json:"cpu_ratio"` // actormesh's CPU per delivery over gossipsub's
	// CPURatioAfter is the same ratio with each side's CPU after the window (after_cpu_us_per_delivery) added.
	CPURatioAfter float64 `json:"cpu_ratio_after"`
}

// comparison is the outcome of a comparison.
type comparison struct {
	Seeds        []comparedSeed `json:"seeds"`
	CPURatioMin  float64        `json:"cpu_ratio_min"`
	CPURatioMax  float64        `json:"cpu_ratio_max"`
	CPURatioMean float64        `json:"cpu_ratio_mean"`
	// CPURatioAfterMean is the mean of the seeds' CPURatioAfter.
	CPURatioAfterMean float64 `json:"cpu_ratio_after_mean"`
}

// parseSeeds reads a list of seeds: "7-12", "7,9,11" or a mix ("7-9,12").
func parseSeeds(s string) ([]uint64, error) {
	var out []uint64
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil || a == 0 {
			return nil, fmt.Errorf("seeds %q: %q is not a seed (a positive integer)", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 64); err != nil || b < a || b-a >= 1000 {
				return nil, fmt.Errorf("seeds %q: %q is not a range of at most 1000 seeds", s, part)
			}
		}
		for v := a; v <= b; v++ {
			out = append(out, v)
		}
	}
	return out, nil
}

// scenarioArgs returns the flags that give a run sc's scenario, in the single-dash form both commands take.
func scenarioArgs(sc scenario, seed uint64) []string {
	return []string{"-n", strconv.Itoa(sc.n), "-degree", strconv.Itoa(sc.degree), "-messages", strconv.Itoa(sc.messages),
		"-size", strconv.Itoa(sc.size), "-interval", sc.interval.String(), "-latency", sc.latency.String(),
		"-idle", sc.idle.String(), "-after", sc.after.String(), "-transport", sc.transport, "-publishers", strconv.Itoa(sc.publishers),
		"-seed", strconv.FormatUint(seed, 10), "-json"}
}

// compare runs the comparison, writing a line per seed to progress as it goes (nil: none).
func compare(ctx context.Context, cfg compareConfig, progress io.Writer) (comparison, error) {
	var out comparison
	for _, seed := range cfg.seeds {
		args := scenarioArgs(cfg.sc, seed)
		gs := append(args, "-settle", cfg.sc.settle.String())
		var c comparedSeed
		c.Seed = seed
		if err := runJSON(ctx, cfg.runTime, cfg.harness, gs, &c.Gossipsub); err != nil {
			return out, fmt.Errorf("seed %d, gossipsub: %w", seed, err)
		}
		if c.Gossipsub.CPUUsPerDelivery <= 0 {
			return out, fmt.Errorf("seed %d: gossipsub measured no CPU per delivery", seed)
		}
		ours := append(append([]string{"sim"}, args[:len(args):len(args)]...), cfg.nodeExtra...)
		if err := runJSON(ctx, cfg.runTime, cfg.node, ours, &c.Actormesh); err != nil {
			return out, fmt.Errorf("seed %d, actormesh: %w", seed, err)
		}
		c.CPURatio = c.Actormesh.CPUUsPerDelivery / c.Gossipsub.CPUUsPerDelivery
		c.CPURatioAfter = (c.Actormesh.CPUUsPerDelivery + c.Actormesh.AfterCPUUs) /
			(c.Gossipsub.CPUUsPerDelivery + c.Gossipsub.AfterCPUUs)
		out.Seeds = append(out.Seeds, c)
		if progress != nil {
			fmt.Fprintln(progress, seedLine(c))
		}
	}
	out.summarize()
	return out, nil
}

// summarize sets the ratios' minimum, maximum and mean over the seeds.
func (c *comparison) summarize() {
	if len(c.Seeds) == 0 {
		return
	}
	c.CPURatioMin, c.CPURatioMax = math.Inf(1), math.Inf(-1)
	var sum, sumAfter float64
	for _, s := range c.Seeds {
		c.CPURatioMin, c.CPURatioMax = min(c.CPURatioMin, s.CPURatio), max(c.CPURatioMax, s.CPURatio)
		sum += s.CPURatio
		sumAfter += s.CPURatioAfter
	}
	c.CPURatioMean = sum / float64(len(c.Seeds))
	c.CPURatioAfterMean = sumAfter / float64(len(c.Seeds))
}

func seedLine(c comparedSeed) string {
	g, a := c.Gossipsub, c.Actormesh
	return fmt.Sprintf("seed %d: CPU per delivery %.1f µs on gossipsub, %.1f on actormesh: %.3f (with %.1f / %.1f µs after "+
		"the window: %.3f) | delivery %.4f / %.4f, "+
		"p100 %.1f / %.1f ms, duplicates %.2f / %.2f, wire %.0f / %.0f B, background %.1f / %.1f µs, RSS %.2f / %.2f MiB per node",
		c.Seed, g.CPUUsPerDelivery, a.CPUUsPerDelivery, c.CPURatio, g.AfterCPUUs, a.AfterCPUUs, c.CPURatioAfter,
		g.DeliveryRatio, a.DeliveryRatio, g.P100Ms, a.P100Ms,
		g.DupPerDelivery, a.DupPerDelivery, g.WireBytesPerDelivery, a.WireBytesPerDelivery, g.BackgroundCPUUs,
		a.BackgroundCPUUs, g.PeakRSSPerNodeMiB, a.PeakRSSPerNodeMiB)
}

// runJSON runs a command that prints one JSON object as its last line of output and decodes it into v. The run is
// killed past limit.
func runJSON(ctx context.Context, limit time.Duration, name string, args []string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, tail(stderr.Bytes(), 400))
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if i := bytes.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s printed no JSON object last: %w", name, err)
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// runCompare is main's -compare: it returns the exit code.
func runCompare(sc scenario, node, seeds, nodeArgs string, runTimeout time.Duration, asJSON bool) int {
	list, err := parseSeeds(seeds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gossipsubsim:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gossipsubsim: this harness's binary:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := compareConfig{sc: sc, seeds: list, harness: self, node: node, nodeExtra: strings.Fields(nodeArgs),
		runTime: runTimeout}
	progress := io.Writer(os.Stderr)
	if !asJSON {
		progress = os.Stdout
	}
	res, err := compare(ctx, cfg, progress)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gossipsubsim:", err)
		return 1
	}
	if asJSON {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
		return 0
	}
	fmt.Printf("CPU per delivery, actormesh against gossipsub: %.3f-%.3f, mean %.3f over %d seeds (with the CPU after "+
		"the window: mean %.3f)\n", res.CPURatioMin, res.CPURatioMax, res.CPURatioMean, len(res.Seeds), res.CPURatioAfterMean)
	return 0
}
