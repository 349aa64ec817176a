package main

import (
	"context"
	"testing"
	"time"
)

// TestRunDeliversEverything runs a small network through the harness on each transport: every message reaches
// every other node, no sooner than the links' latency, and the figures the comparison reads are filled in (on mem
// with the -after time measured too).
func TestRunDeliversEverything(t *testing.T) {
	for _, transport := range []string{"mem", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			sc := scenario{n: 12, degree: 4, messages: 5, size: 256, interval: 50 * time.Millisecond,
				latency: 5 * time.Millisecond, settle: 2 * time.Second, idle: 500 * time.Millisecond,
				drain: 10 * time.Second, timeout: 30 * time.Second, seed: 7, transport: transport}
			if transport == "mem" {
				sc.after = 1500 * time.Millisecond // a heartbeat and more
			}
			rep, err := run(context.Background(), sc)
			if err != nil {
				t.Fatal(err)
			}
			if rep.DeliveryRatio != 1 || rep.Deliveries != 5*11 {
				t.Fatalf("delivery ratio %v (%d deliveries), want 1 (55)", rep.DeliveryRatio, rep.Deliveries)
			}
			if rep.P50Ms < 5 || rep.WireBytesPerDelivery < 256 || rep.CPUUsPerDelivery <= 0 || rep.PeakRSSMiB <= 0 {
				t.Fatalf("figures not measured: %+v", rep)
			}
		})
	}
}

// With an even number of messages, the median takes the mean of the two middle ones, and reads -1 when either
// never reached the share: p100 read the delivered half's delay.
func TestQuantilesOfAnEvenCount(t *testing.T) {
	ms := time.Millisecond
	got := [][]time.Duration{{10 * ms, 50 * ms}, {20 * ms}} // message 1 never reached the second node
	p50, _, _, p100 := quantiles(got, 2)
	if p50 != 15 || p100 != -1 {
		t.Fatalf("p50 %v, p100 %v: want 15 (the mean of 10 and 20) and -1", p50, p100)
	}
}
