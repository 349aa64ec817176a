package main

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseSeeds(t *testing.T) {
	for in, want := range map[string][]uint64{"7": {7}, "7-9": {7, 8, 9}, "7,9": {7, 9}, "7-8, 12": {7, 8, 12}} {
		if got, err := parseSeeds(in); err != nil || !slices.Equal(got, want) {
			t.Errorf("parseSeeds(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "x", "9-7", "1-5000", "7,"} {
		if got, err := parseSeeds(in); err == nil {
			t.Errorf("parseSeeds(%q) = %v, want an error", in, got)
		}
	}
}

func TestSummarizeTakesTheRatiosRange(t *testing.T) {
	c := comparison{Seeds: []comparedSeed{{CPURatio: 0.2}, {CPURatio: 0.3}, {CPURatio: 0.1}}}
	c.summarize()
	if c.CPURatioMin != 0.1 || c.CPURatioMax != 0.3 || math.Abs(c.CPURatioMean-0.2) > 1e-9 {
		t.Fatalf("got %v-%v, mean %v, want 0.1-0.3, mean 0.2", c.CPURatioMin, c.CPURatioMax, c.CPURatioMean)
	}
}

// TestCompareRunsBothStacks builds this harness and actormesh's node command and compares a small network on both:
// each side's run delivers every message, and the ratio is actormesh's CPU per delivery over gossipsub's.
func TestCompareRunsBothStacks(t *testing.T) {
	dir := t.TempDir()
	harness, node := filepath.Join(dir, "gossipsubsim"), filepath.Join(dir, "node")
	build(t, ".", harness, ".")
	build(t, "../..", node, "./cmd/node")
	sc := scenario{n: 12, degree: 4, messages: 5, size: 256, publishers: 3, interval: 50 * time.Millisecond,
		latency: 5 * time.Millisecond, settle: time.Second, idle: 500 * time.Millisecond, after: 500 * time.Millisecond,
		transport: "mem"}
	cfg := compareConfig{sc: sc, seeds: []uint64{7}, harness: harness, node: node,
		nodeExtra: []string{"--settle", "1s"}, runTime: 3 * time.Minute}
	var progress strings.Builder
	res, err := compare(context.Background(), cfg, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Seeds) != 1 || !strings.HasPrefix(progress.String(), "seed 7: CPU per delivery") {
		t.Fatalf("got %d seeds, progress %q", len(res.Seeds), progress.String())
	}
	s := res.Seeds[0]
	for name, rep := range map[string]report{"gossipsub": s.Gossipsub, "actormesh": s.Actormesh} {
		if rep.N != 12 || rep.Messages != 5 || rep.Publishers != 3 || rep.DeliveryRatio != 1 || rep.CPUUsPerDelivery <= 0 {
			t.Fatalf("%s: n %d, messages %d, publishers %d, delivery ratio %v, CPU %v µs per delivery", name, rep.N,
				rep.Messages, rep.Publishers, rep.DeliveryRatio, rep.CPUUsPerDelivery)
		}
	}
	if want := s.Actormesh.CPUUsPerDelivery / s.Gossipsub.CPUUsPerDelivery; s.CPURatio != want || res.CPURatioMean != want {
		t.Fatalf("ratio %v, mean %v, want %v", s.CPURatio, res.CPURatioMean, want)
	}
	// Both sides measured the CPU after the window (with -idle), which the second ratio adds.
	if s.Gossipsub.AfterCPUUs == 0 || s.Actormesh.AfterCPUUs == 0 || s.CPURatioAfter != (s.Actormesh.CPUUsPerDelivery+
		s.Actormesh.AfterCPUUs)/(s.Gossipsub.CPUUsPerDelivery+s.Gossipsub.AfterCPUUs) {
		t.Fatalf("after the window: %v and %v µs per delivery, ratio %v", s.Gossipsub.AfterCPUUs, s.Actormesh.AfterCPUUs,
			s.CPURatioAfter)
	}
}

// build builds package pkg of the module in dir into out.
func build(t *testing.T, dir, out, pkg string) {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"build"}, buildFlags...), "-o", out, pkg)...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}
