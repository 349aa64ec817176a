package gossip

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// referenceDecode is what Delivery.decode must agree with: anypb's own decoding.
func referenceDecode(b []byte) (proto.Message, error) {
	var a anypb.Any
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, err
	}
	return a.UnmarshalNew()
}

func anyBytes(t testing.TB, m proto.Message) []byte {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDeliveryDecodeCopiesThePayloadOnce checks that a payload is decoded from the message's bytes without a
// first copy of the Any's value: one allocation fewer than anypb's way, and the 1 KiB it copied.
func TestDeliveryDecodeCopiesThePayloadOnce(t *testing.T) {
	b := anyBytes(t, wrapperspb.Bytes(bytes.Repeat([]byte{7}, 1024)))
	d := &Delivery{Data: b}
	d.decode()
	if d.Err != nil || !proto.Equal(d.Payload, wrapperspb.Bytes(bytes.Repeat([]byte{7}, 1024))) {
		t.Fatalf("decoded %v, %v", d.Payload, d.Err)
	}
	ours := testing.AllocsPerRun(100, func() { (&Delivery{Data: b}).decode() })
	ref := testing.AllocsPerRun(100, func() { _, _ = referenceDecode(b) })
	if ours >= ref {
		t.Fatalf("decode allocated %v times, anypb's way %v: the value was copied first", ours, ref)
	}
}

// FuzzDeliveryDecode checks that Delivery.decode agrees with anypb on any bytes: it fails exactly when anypb does,
// otherwise decodes an equal payload, and never changes the message's bytes.
func FuzzDeliveryDecode(f *testing.F) {
	good := anyBytes(f, wrapperspb.String("hello"))
	f.Add(good)
	f.Add(anyBytes(f, wrapperspb.Bytes(make([]byte, 100))))
	f.Add(append(append([]byte{}, good...), protowire.AppendTag(nil, 3, protowire.VarintType)...)) // unknown field
	f.Add(append(append([]byte{}, good...), good...))                                              // every field twice
	f.Add([]byte{0x0a, 0x03, 0xff, 0xfe, 0xfd})                                                    // type URL not UTF-8
	f.Add([]byte{0x12, 0x05, 0x01})                                                                // truncated value
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		want, wantErr := referenceDecode(b)
		d := &Delivery{Data: b}
		d.decode()
		if (d.Err == nil) != (wantErr == nil) {
			t.Fatalf("decode error %v, anypb's %v", d.Err, wantErr)
		}
		if wantErr == nil && !proto.Equal(d.Payload, want) {
			t.Fatalf("decoded %v, anypb %v", d.Payload, want)
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("decode changed the message's bytes")
		}
	})
}
