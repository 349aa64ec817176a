package actors

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

func TestPayloadDecodesGossipRPCWithTheFastPath(t *testing.T) {
	rpc := &messages.GossipRPC{
		Hello:         true,
		Subscriptions: []*messages.GossipSubscription{{Topic: "blocks", Subscribe: true}},
		Control: &messages.GossipControl{
			Ihave: []*messages.GossipIHave{{Topic: "blocks", Ids: [][]byte{make([]byte, 20), make([]byte, 20)}}},
			Tree:  []*messages.GossipTree{{Topic: "blocks", Root: make([]byte, 32), Path: []uint32{1, 2, 3}}},
		},
		Messages: []*messages.GossipMessage{{Topic: "blocks", Data: make([]byte, 1024), Origin: make([]byte, 32), Seq: 7}},
	}
	b, err := encodeDirect("actormesh/gossip/1", messages.DirectKind_DIRECT_KIND_ONEWAY, 0, rpc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeDirect(b)
	if err != nil {
		t.Fatal(err)
	}
	if !isGossipRPCURL(d.typeURL) {
		t.Fatalf("isGossipRPCURL(%q) is false for encodeDirect's type URL", d.typeURL)
	}
	got, err := d.payload()
	if err != nil || !proto.Equal(got, rpc) {
		t.Fatalf("payload: %v, %v", got, err)
	}
	for i := range b {
		b[i] = 0 // the connection reuses its read buffer
	}
	if !proto.Equal(got, rpc) {
		t.Fatal("decoded payload aliases the read buffer")
	}

	d.value = []byte{0x0a, 0x05} // truncated subscription
	if _, err := d.payload(); err == nil || !strings.Contains(err.Error(), "malformed "+d.typeURL+" payload") {
		t.Fatalf("malformed payload: %v", err)
	}
	for _, url := range []string{"", typeURLPrefix, typeURLPrefix + "actormesh.gossip.v1.GossipControl", "actormesh.gossip.v1.GossipRPC"} {
		if isGossipRPCURL(url) {
			t.Errorf("isGossipRPCURL(%q) is true", url)
		}
	}
	other, err := encodeDirect("chat/1", messages.DirectKind_DIRECT_KIND_ONEWAY, 0, wrapperspb.String("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := decodeDirect(other); err != nil || isGossipRPCURL(d.typeURL) {
		t.Fatalf("another payload type taken for a GossipRPC: %v", err)
	}
}

// TestInboundDecoderReusesItsDirectAndNames decodes messages as a connection reader does: a message like the one
// before needs no allocation (its direct and its names are reused), and a new protocol or payload type is read
// right.
func TestInboundDecoderReusesItsDirectAndNames(t *testing.T) {
	encode := func(protocol string, msg proto.Message) []byte {
		b, err := encodeDirect(protocol, messages.DirectKind_DIRECT_KIND_ONEWAY, 0, msg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chat, gossip := encode("chat/1", wrapperspb.String("hi")), encode("actormesh/gossip/1", &messages.GossipRPC{Hello: true})
	var dec inboundDecoder
	for i, c := range []struct {
		b              []byte
		protocol, name string
	}{
		{chat, "chat/1", "google.protobuf.StringValue"}, {chat, "chat/1", "google.protobuf.StringValue"},
		{gossip, "actormesh/gossip/1", "actormesh.gossip.v1.GossipRPC"}, {chat, "chat/1", "google.protobuf.StringValue"},
	} {
		d, env, err := dec.decode(c.b)
		if err != nil || env != nil || d.protocol != c.protocol || d.typeURL != typeURLPrefix+c.name {
			t.Fatalf("message %d: %+v %v %v, want protocol %s", i, d, env, err, c.protocol)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := dec.decode(chat); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Fatalf("decoding a message like the one before allocated %v times", allocs)
	}
}

func TestEncodeDirectPooledMatchesEncodeDirect(t *testing.T) {
	msg := &messages.GossipRPC{Messages: []*messages.GossipMessage{{Topic: "blocks", Data: make([]byte, 1024), Seq: 9}}}
	want, err := encodeDirect("actormesh/gossip/1", messages.DirectKind_DIRECT_KIND_ONEWAY, 0, msg)
	if err != nil {
		t.Fatal(err)
	}
	pool := session.NewBufferPool()
	got, buf, err := encodeDirectPooled(pool, "actormesh/gossip/1", messages.DirectKind_DIRECT_KIND_ONEWAY, 0, msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("pooled encoding differs from encodeDirect's")
	}
	if buf == nil || cap(*buf) < len(got) || &(*buf)[:1][0] != &got[0] {
		t.Fatal("the pooled encoding does not lie in the buffer returned with it")
	}
	pool.Put(buf)
	if _, buf, err := encodeDirectPooled(nil, "p/1", 0, 0, msg); err != nil || buf != nil {
		t.Fatalf("with no pool: buffer %v, error %v; want none and no error", buf, err)
	}
	if _, buf, err := encodeDirectPooled(pool, "p/1", 0, 0, nil); !errors.Is(err, ErrBadPayload) || buf != nil {
		t.Fatalf("nil message: buffer %v, error %v; want ErrBadPayload and no buffer", buf, err)
	}
}
