package actors_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/testkit"
)

// A connection answers pings up to a rate (20 a second, 100 at once) and drops the rest unanswered: each pong is
// queued, and a peer that pinged without end while reading slowly made the node queue millions of them (hundreds
// of MB on one connection). The error reply to a request the peer sends after its pings comes after every pong the
// node will send for them (one reader, one queue), so the pongs counted before it are all there are.
func TestPingFloodIsAnsweredOnlyUpToTheRate(t *testing.T) {
	nw := testkit.NewNetwork(t, 1)
	sc, _ := rawPeer(t, nw.Nodes[0])
	ping, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	const sent = 2000
	pings := make([][]byte, sent)
	for i := range pings {
		pings[i] = ping
	}
	barrier, err := proto.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
		Protocol: "none/1", Kind: messages.DirectKind_DIRECT_KIND_REQUEST, RequestId: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := sc.WriteMessages(append(pings, barrier)...); err != nil {
		t.Fatal(err)
	}
	_ = sc.SetReadDeadline(time.Now().Add(10 * time.Second))
	pongs := 0
	for {
		b, err := sc.ReadMessage()
		if err != nil {
			t.Fatalf("after %d pongs: %v", pongs, err)
		}
		var env messages.Envelope
		if err := proto.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		if env.GetPong() != nil {
			pongs++
		}
		if d := env.GetDirect(); d != nil && d.GetRequestId() == 7 {
			break
		}
	}
	// The burst, and the rate over the time the pings took to arrive (a second of slack).
	most := 100 + int(20*(time.Since(start).Seconds()+1))
	if pongs == 0 || pongs > most {
		t.Fatalf("%d pongs for %d pings, want 1 to %d", pongs, sent, most)
	}
}
