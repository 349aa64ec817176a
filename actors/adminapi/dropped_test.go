package adminapi_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/gossip"
)

// A stream that misses exactly one message is told so: the next event is "dropped" with 1, then the next message,
// and the count starts again from 0 (the message after has no dropped event before it). The message missed is one
// the stream's byte budget cannot hold, StreamBufferBytes of encoded payload, while a message of exactly the budget
// fits (D09).
func TestAStreamThatMissedOneMessageIsToldSo(t *testing.T) {
	ctx, a, b := connectedPair(t, false)
	if _, err := b.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
		t.Fatal(err)
	}
	// The stream's budget counts a message's payload as the node publishes it: a google.protobuf.Any.
	encoded := func(data string) int {
		t.Helper()
		var m anypb.Any
		det := proto.MarshalOptions{Deterministic: true}
		if err := anypb.MarshalFrom(&m, wrapperspb.Bytes([]byte(data)), det); err != nil {
			t.Fatal(err)
		}
		b, err := det.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	first, over, next, last := strings.Repeat("1", 100), strings.Repeat("2", 101), strings.Repeat("3", 100), strings.Repeat("4", 100)
	budget := encoded(first)
	if encoded(over) != budget+1 || encoded(next) != budget {
		t.Fatalf("payload sizes %d, %d, %d: the test wants the budget, one more and the budget", budget, encoded(over), encoded(next))
	}
	api := adminapi.New(a, adminapi.Config{StreamBufferBytes: budget})
	srv := httptest.NewServer(api)
	t.Cleanup(func() { api.Close(); srv.Close() })
	resp := openStream(ctx, t, srv.URL, "news")
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	if line, err := events.ReadString('\n'); err != nil || !strings.HasPrefix(line, ": subscribed") {
		t.Fatalf("first stream line %q, %v", line, err)
	}
	if err := a.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		body, _ := json.Marshal(adminapi.PublishRequest{Data: &data})
		if status, resp := call(t, "POST", srv.URL+"/v1/topics/news/messages", "application/json", string(body)); status != http.StatusCreated {
			t.Fatalf("publish: %d %s", status, resp)
		}
	}
	// Each message is read before the next is published: the stream's queue is empty at each publication, and
	// the message over the budget is the only one dropped.
	publish(first)
	if got := nextEvents(t, events); !slices.Equal(got, []string{"message:" + first}) {
		t.Fatalf("events %q, want the message of exactly the budget", got)
	}
	publish(over)
	publish(next)
	if got := nextEvents(t, events); !slices.Equal(got, []string{`dropped:{"dropped":1}`, "message:" + next}) {
		t.Fatalf("events %q, want a dropped event saying 1, then the next message", got)
	}
	publish(last)
	if got := nextEvents(t, events); !slices.Equal(got, []string{"message:" + last}) {
		t.Fatalf("events %q, want the last message alone: the one drop was told already", got)
	}
}

// nextEvents reads the stream's events up to and including the next "message" one, each as "name:data", a
// message's data as its payload text.
func nextEvents(t *testing.T, r *bufio.Reader) []string {
	t.Helper()
	var out []string
	event := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream ended after %q: %v", out, err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			if event != "message" {
				out = append(out, event+":"+data)
				continue
			}
			var m adminapi.Message
			if err := json.Unmarshal([]byte(data), &m); err != nil || m.Data == nil {
				t.Fatalf("message event %q: %v", data, err)
			}
			return append(out, "message:"+*m.Data)
		}
	}
}

// A stream shows a message's payload as OPERATOR.md says: text (a StringValue, or bytes that are UTF-8) as "data",
// other bytes as "data_base64", another type by name with its JSON.
func TestAStreamRendersEachKindOfPayload(t *testing.T) {
	ctx, a, b := connectedPair(t, false)
	for _, n := range []*actors.Node{a, b} {
		if _, err := n.Subscribe(ctx, "news", func(*gossip.Delivery) {}); err != nil {
			t.Fatal(err)
		}
	}
	srv := serve(t, a)
	resp := openStream(ctx, t, srv.URL, "news")
	defer resp.Body.Close()
	events := bufio.NewReader(resp.Body)
	if err := b.WaitTopicPeers(ctx, "news", 1); err != nil {
		t.Fatal(err)
	}
	text := func(s *string) string {
		if s == nil {
			return "<none>"
		}
		return *s
	}
	for _, c := range []struct {
		payload                  proto.Message
		data, dataBase64, typeOf string
	}{
		{wrapperspb.String("héllo"), "héllo", "<none>", ""},
		{wrapperspb.Bytes([]byte("bytes")), "bytes", "<none>", ""},
		{wrapperspb.Bytes([]byte{0xff, 0xfe}), "<none>", "//4=", ""},
		{wrapperspb.Int64(7), "<none>", "<none>", "google.protobuf.Int64Value"},
	} {
		if _, err := b.Publish(ctx, "news", c.payload); err != nil {
			t.Fatal(err)
		}
		m := nextEvent(t, events)
		if text(m.Data) != c.data || text(m.DataBase64) != c.dataBase64 || m.Type != c.typeOf || (c.typeOf != "") != (len(m.JSON) > 0) {
			t.Errorf("%T %v streamed as data %q, data_base64 %q, type %q, json %s", c.payload, c.payload, text(m.Data),
				text(m.DataBase64), m.Type, m.JSON)
		}
	}
}
