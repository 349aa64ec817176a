package adminapi_test

import (
	"net/http"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
)

// A peer's answer the node cannot decode (a type it does not link), and a peer's refusal of the payload's type
// (BAD_PAYLOAD), are the peer's: 502, as OPERATOR.md says of the peer's errors. They were 400, a client's mistake,
// since both match actors.ErrBadPayload (an audit's finding).
func TestThePeersBadPayloadAnswersAre502(t *testing.T) {
	_, a, b := connectedPair(t, false)
	fd, err := protodesc.NewFile(&descriptorpb.FileDescriptorProto{
		Name: proto.String("opaque_test.proto"), Package: proto.String("opaquetest"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Opaque")}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	opaque := fd.Messages().Get(0)
	if _, err := b.Register("opaque/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok && in.IsRequest() {
			_ = in.Reply(dynamicpb.NewMessage(opaque))
		}
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Register("strings/1", actor.PropsFromFunc(func(ctx actor.Context) {
		if in, ok := ctx.Message().(*actors.Inbound); ok && in.IsRequest() {
			_ = in.Reply(in.Payload)
		}
	}), actors.Accepts(&wrapperspb.StringValue{})); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, a)
	for _, protocol := range []string{"opaque/1", "strings/1"} {
		code, body := call(t, http.MethodPost, srv.URL+"/v1/peers/"+b.ID().String()+"/messages", "application/json",
			`{"protocol":"`+protocol+`","data":"hi","request":true}`)
		if code != http.StatusBadGateway {
			t.Errorf("%s: status %d, want 502: %s", protocol, code, body)
		}
	}
}
