#!/usr/bin/env sh
# Regenerates the Go code of messages/*.proto. protoc comes from Debian's protobuf-compiler; protoc-gen-go is built
# from the google.golang.org/protobuf version pinned in go.mod, so the output is reproducible.
set -eu
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
protoc --plugin=protoc-gen-go="$bin/protoc-gen-go" --go_out=. --go_opt=module=github.com/actormesh/actormesh \
  messages/wire.proto messages/events.proto messages/discovery.proto messages/gossip.proto
