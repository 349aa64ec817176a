package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/actormesh/actormesh/testkit"
)

func TestSimDiscoveryJSON(t *testing.T) {
	code, out, errOut := call(t, "sim", "discovery", "-n", "12", "--lookups", "40", "--workers", "4", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("--json must print exactly one line, got %q", out)
	}
	var r testkit.DiscoveryReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	if r.N != 12 || r.Lookups != 40 || !r.Converged || r.LookupSuccess != 1 || r.HopsMax > r.HopsBound ||
		r.LatencyP50Ms <= 0 || r.RequestsPerLookup <= 0 || r.PeakRSSMiB <= 0 {
		t.Fatalf("implausible report: %+v", r)
	}
	// The JSON field names are the documented interface.
	for _, f := range []string{`"converge_s"`, `"lookup_success"`, `"lookup_p50_ms"`, `"lookup_p99_ms"`, `"hops_p50"`,
		`"hops_p99"`, `"requests_per_lookup"`, `"peak_rss_per_node_mib"`, `"setup_s"`} {
		if !strings.Contains(out, f) {
			t.Errorf("JSON lacks %s", f)
		}
	}
}

func TestSimDiscoveryTableAndBadFlags(t *testing.T) {
	code, out, errOut := call(t, "sim", "discovery", "-n", "4", "--lookups", "8")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, row := range []string{"convergence", "lookup success", "hops p50 / p99 / max (bound)"} {
		if !strings.Contains(out, row) {
			t.Errorf("table lacks %q:\n%s", row, out)
		}
	}
	if code, _, errOut := call(t, "sim", "discovery", "-n", "1"); code != exitUsage || !strings.Contains(errOut, "-n >= 2") {
		t.Fatalf("-n 1: exit %d, %q", code, errOut)
	}
	if code, _, _ := call(t, "sim"); code != exitUsage {
		t.Fatalf("sim without a scenario: exit %d", code)
	}
}
