package main

import (
	"github.com/asynkron/protoactor-go/actor"
	// Linked in so that peers can send the well-known wrapper types (StringValue, BytesValue, ...) to echo/1:
	// a payload type must be in the program's protobuf registry to be decoded.
	_ "google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
)

// echoProtocol is the built-in protocol of `node run`: it answers every request with its own payload, so that
// peers can test requests against a running node.
const echoProtocol = "echo/1"

// echoProps is the protocol actor of echo/1. One-way messages are ignored.
func echoProps() *actor.Props {
	return actor.PropsFromFunc(func(ctx actor.Context) {
		in, ok := ctx.Message().(*actors.Inbound)
		if !ok || !in.IsRequest() {
			return
		}
		_ = in.Reply(in.Payload) // fails only when the requester is gone
	})
}
