package actors

import (
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

func TestDecodeEnvelopeRejectsWhatTheReaderCannotHandle(t *testing.T) {
	for _, b := range envelopeSeeds(t) {
		if _, err := decodeEnvelope(b); err != nil {
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
		if _, err := decodeEnvelope(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := decodeEnvelope([]byte{0xff, 0xff, 0xff}); err == nil {
		t.Error("garbage accepted")
	}
}

// FuzzDecodeEnvelope feeds arbitrary bytes to the envelope decoder of the connection reader: it must never panic,
// and whatever it accepts must have a body the reader handles.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, b := range envelopeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		switch body := env.Body.(type) {
		case *messages.Envelope_Ping, *messages.Envelope_Pong, *messages.Envelope_Disconnect:
		case *messages.Envelope_Direct:
			if body.Direct == nil {
				t.Fatal("accepted an empty direct message")
			}
			if body.Direct.Kind != messages.DirectKind_DIRECT_KIND_ONEWAY && body.Direct.RequestId == 0 {
				t.Fatal("accepted a request-kind message without request id")
			}
		default:
			t.Fatalf("accepted body %T", body)
		}
		if _, err := proto.Marshal(env); err != nil {
			t.Fatalf("accepted envelope does not re-encode: %v", err)
		}
	})
}
