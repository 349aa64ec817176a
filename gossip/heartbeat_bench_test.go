package gossip

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkHeartbeatPerTopic measures a relay's heartbeat (Router.Heartbeat and the encoding of its RPCs) for
// nTopics joined topics, 16 peers in every topic, perBeat messages published per topic between heartbeats: its cost
// per topic should not grow with the topics. While each topic's announcements scanned the whole message cache it
// did: 22 µs a topic at 1 topic of 20 messages, 51 at 64 (3.2 ms a heartbeat); one pass for all, 16-22 µs
// (1.3 ms at 64; stop 58, `go test -run '^$' -bench HeartbeatPerTopic -benchtime 100x ./gossip`).
func BenchmarkHeartbeatPerTopic(b *testing.B) {
	for _, perBeat := range []int{0, 5, 20} {
		for _, nTopics := range []int{1, 8, 16, 32, 64} {
			b.Run(fmt.Sprintf("msgs=%d/topics=%d", perBeat, nTopics), func(b *testing.B) {
				now := t0
				cfg := DefaultRelayConfig()
				cfg.Router.Self = nid(1000)
				cfg.Router.CacheMaxMessages = 1 << 16
				cfg.Router.SeenMax = 1 << 20
				r := newTestRouter(b, cfg.Router)
				for i := range nTopics {
					addPeers(b, r, floodTopic(i), 1, 16)
					r.Join(now, floodTopic(i))
				}
				a := testShell(cfg, r, &marshalNetwork{flakyNetwork: flakyNetwork{self: nid(1000), peer: nid(1)}}, 1e9, 1e9)
				for i := 1; i <= 16; i++ {
					a.peers[nid(i)] = true
				}
				seq := 0
				for range 10 { // settle
					now = now.Add(time.Second)
					a.heartbeat(now)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					b.StopTimer()
					for i := range nTopics {
						for range perBeat {
							seq++
							m := &Message{Topic: floodTopic(i), Data: fmt.Appendf(nil, "m%d", seq), Origin: nid(1000), OriginTime: now.UnixNano()}
							if _, err := r.Publish(now, m); err != nil {
								b.Fatal(err)
							}
						}
					}
					now = now.Add(time.Second)
					b.StartTimer()
					a.heartbeat(now)
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(nTopics), "us/topic")
			})
		}
	}
}
