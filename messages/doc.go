// Package messages holds the protobuf sources and generated Go code of actormesh: the wire Envelope (wire.proto)
// and the events the node's actors exchange through their mailboxes (events.proto).
//
// Regenerate with `go generate ./messages` (runs gen.sh: protoc from Debian's protobuf-compiler and the
// protoc-gen-go of the google.golang.org/protobuf version pinned in go.mod).
package messages

//go:generate sh gen.sh
