package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/actormesh/actormesh/testkit"
)

// TestBinarySparseTopicPeersFindEachOther: four `node run` peers that keep no connection (--target-outbound 0),
// two of them in a topic. Neither keeps a connection to the other, so B's first publications find no topic peer;
// both register on the topic in the DHT, find each other there, and what B publishes reaches D's subscriber;
// `node topic-peers` lists the registered node.
func TestBinarySparseTopicPeersFindEachOther(t *testing.T) {
	common := []string{"--listen", "127.0.0.1:0", "--log-format", "json", "--target-outbound", "0"}
	a := start(t, append([]string{"run", "--api", "off"}, common...)...)
	addrA := a.listening(t).String()
	b := start(t, append([]string{"run", "--bootnode", addrA, "--api", "127.0.0.1:0", "--topic", "rare"}, common...)...)
	b.listening(t)
	apiB := strings.TrimPrefix(b.stdoutValue(t, "api"), "http://")
	c := start(t, append([]string{"run", "--bootnode", addrA, "--api", "off"}, common...)...)
	c.listening(t)
	d := start(t, append([]string{"run", "--bootnode", addrA, "--api", "127.0.0.1:0", "--topic", "rare"}, common...)...)
	d.listening(t)
	apiD := strings.TrimPrefix(d.stdoutValue(t, "api"), "http://")

	sub := start(t, "subscribe", "rare", "--api", apiD, "--count", "1")
	sub.waitStderr(t, "the subscription", "subscribed to rare")
	published, refused := 0, 0
	var last time.Time
	err := testkit.Poll(context.Background(), 60*time.Second, func() bool {
		if sub.exited() {
			return true
		}
		if time.Since(last) < 200*time.Millisecond { // a publication (a process) every 200 ms is enough
			return false
		}
		last = time.Now()
		published++
		code, _, errOut := runBinary(t, "publish", "rare", fmt.Sprintf("found you (%d)", published), "--api", apiB)
		if code != 0 {
			if !strings.Contains(errOut, "no peer in topic") {
				t.Fatalf("publish: exit %d: %s", code, errOut)
			}
			refused++
		}
		return false
	})
	if err != nil {
		t.Fatalf("D's subscriber got nothing after %d publications (%d refused for want of a topic peer); its stderr:\n%s",
			published, refused, &sub.stderr)
	}
	t.Logf("%d publications, %d refused for want of a topic peer before B and D found each other", published, refused)
	if !strings.Contains(sub.stdout.String(), "found you") {
		t.Fatalf("D's subscriber printed %q", sub.stdout.String())
	}
	// `node topic-peers` lists D, registered on the topic, as B's lookup finds it (B does not list itself).
	addrD := d.listening(t)
	testkit.WaitFor(t, 20*time.Second, func() bool {
		code, out, _ := runBinary(t, "topic-peers", "rare", "--api", apiB)
		return code == 0 && strings.Contains(out, addrD.String()+"\n") && strings.Contains(out, "1 nodes registered on rare")
	}, "`node topic-peers rare` through B to list D (%s)", addrD)

	for name, p := range map[string]*proc{"A": a, "B": b, "C": c, "D": d} {
		if code := p.stop(t, syscall.SIGTERM, 10*time.Second); code != 0 {
			t.Fatalf("%s exited %d after SIGTERM; stderr:\n%s", name, code, &p.stderr)
		}
	}
}
