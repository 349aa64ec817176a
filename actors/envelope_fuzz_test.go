package actors

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/messages"
)

func envelopeSeeds(t testing.TB) [][]byte {
	payload, _ := anypb.New(wrapperspb.String("hello"))
	envs := []*messages.Envelope{
		{Body: &messages.Envelope_Ping{Ping: &messages.Ping{Nonce: 7}}},
		{Body: &messages.Envelope_Pong{Pong: &messages.Pong{Nonce: 7}}},
		{Body: &messages.Envelope_Direct{Direct: &messages.Direct{Protocol: "chat/1", Kind: messages.DirectKind_DIRECT_KIND_ONEWAY, Payload: payload}}},
		{Body: &messages.Envelope_Direct{Direct: &messages.Direct{Protocol: "chat/1", Kind: messages.DirectKind_DIRECT_KIND_REQUEST, RequestId: 9, Payload: payload}}},
		{Body: &messages.Envelope_Direct{Direct: errorReply("chat/1", 9, messages.ErrorCode_ERROR_CODE_UNKNOWN_PROTOCOL, "none")}},
		disconnectEnvelope(messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER, "queue full"),
		{Body: &messages.Envelope_WindowUpdate{WindowUpdate: &messages.WindowUpdate{Protocol: "chat/1", Messages: 1, Bytes: 5}}},
		{Body: &messages.Envelope_WindowBlocked{WindowBlocked: &messages.WindowBlocked{}}},
	}
	var out [][]byte
	for _, e := range envs {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestEncodeDirectMatchesProtoMarshal(t *testing.T) {
	for _, msg := range []proto.Message{wrapperspb.String("hello"), wrapperspb.String(""), wrapperspb.Bytes(make([]byte, 70000))} {
		for _, kind := range []messages.DirectKind{messages.DirectKind_DIRECT_KIND_ONEWAY, messages.DirectKind_DIRECT_KIND_REQUEST} {
			got, err := encodeDirect("chat/1", kind, uint64(kind)*300, msg)
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := anypb.New(msg)
			want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&messages.Envelope{Body: &messages.Envelope_Direct{Direct: &messages.Direct{
				Protocol: "chat/1", Kind: kind, RequestId: uint64(kind) * 300, Payload: payload,
			}}})
			if !bytes.Equal(got, want) {
				t.Fatalf("encodeDirect(%v) differs from proto.Marshal", kind)
			}
			d, err := decodeDirect(got)
			if err != nil {
				t.Fatal(err)
			}
			back, err := d.payload()
			if err != nil || !proto.Equal(back, msg) || d.protocol != "chat/1" || d.kind != kind {
				t.Fatalf("round trip: %v %v", back, err)
			}
		}
	}
}

func TestDecodeInboundRejectsWhatTheReaderCannotHandle(t *testing.T) {
	for _, b := range envelopeSeeds(t) {
		if _, _, err := decodeInbound(b); err != nil {
			t.Fatalf("valid envelope rejected: %v", err)
		}
	}
	bad := map[string]*messages.Envelope{
		"empty":               {},
		"empty direct":        {Body: &messages.Envelope_Direct{}},
		"unknown kind":        {Body: &messages.Envelope_Direct{Direct: &messages.Direct{Kind: 99}}},
		"request without id":  {Body: &messages.Envelope_Direct{Direct: &messages.Direct{Kind: messages.DirectKind_DIRECT_KIND_REQUEST}}},
		"response without id": {Body: &messages.Envelope_Direct{Direct: &messages.Direct{Kind: messages.DirectKind_DIRECT_KIND_RESPONSE}}},
	}
	for name, e := range bad {
		b, _ := proto.Marshal(e)
		if _, _, err := decodeInbound(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := decodeInbound([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("garbage accepted")
	}
}

// FuzzDecodeEnvelope feeds arbitrary bytes to the connection reader's envelope decoding. It must never panic;
// what the hand-written direct-message decoder accepts must be exactly what proto.Unmarshal reads from the same
// bytes; and an envelope it does not take must never come out of the generic path as a direct message.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, b := range envelopeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, env, err := decodeInbound(b)
		if err != nil {
			return
		}
		if d == nil {
			switch env.Body.(type) {
			case *messages.Envelope_Ping, *messages.Envelope_Pong, *messages.Envelope_Disconnect,
				*messages.Envelope_WindowUpdate, *messages.Envelope_WindowBlocked:
			default:
				t.Fatalf("generic path accepted body %T", env.Body)
			}
			return
		}
		var ref messages.Envelope
		if err := proto.Unmarshal(b, &ref); err != nil {
			t.Fatalf("fast path accepted bytes proto.Unmarshal rejects: %v", err)
		}
		rd := ref.GetDirect()
		if rd == nil {
			t.Fatalf("fast path decoded a direct message, proto.Unmarshal a %T", ref.Body)
		}
		if rd.Protocol != d.protocol || rd.Kind != d.kind || rd.RequestId != d.requestID ||
			(rd.Payload != nil) != d.hasPayload || rd.Payload.GetTypeUrl() != d.typeURL ||
			!bytes.Equal(rd.Payload.GetValue(), d.value) || !proto.Equal(rd.Error, d.err) {
			t.Fatalf("fast path disagrees with proto.Unmarshal:\nfast %+v\nref  %v", d, rd)
		}
		_, _ = d.payload() // an unknown or malformed payload is an error, never a panic
	})
}
