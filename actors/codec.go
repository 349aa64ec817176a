package actors

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// envelopeFields are the fields of Envelope, all of them the members of its body oneof.
var envelopeFields = (&messages.Envelope{}).ProtoReflect().Descriptor().Fields()

// Field numbers of the wire messages, as in messages/wire.proto. The hot path (direct messages) is encoded and
// decoded by hand with protowire: one allocation for the whole envelope on send, no intermediate Any on receive.
const (
	envelopeDirectField = 3
	directProtocolField = 1
	directKindField     = 2
	directRequestField  = 3
	directPayloadField  = 4
	directErrorField    = 5
	anyTypeURLField     = 1
	anyValueField       = 2
	typeURLPrefix       = "type.googleapis.com/"
)

// encodeDirect returns the wire bytes of Envelope{direct: Direct{protocol, kind, request_id, payload: Any(msg)}},
// byte-identical to what proto.Marshal of the same structure gives.
func encodeDirect(protocol string, kind messages.DirectKind, requestID uint64, msg proto.Message) ([]byte, error) {
	b, _, err := encodeDirectPooled(nil, protocol, kind, requestID, msg)
	return b, err
}

// encodeDirectSized is encodeDirect that also returns the payload's size, as the receiver counts it against its
// window (the Any's value bytes, flow.go).
func encodeDirectSized(protocol string, kind messages.DirectKind, requestID uint64, msg proto.Message) ([]byte, int64, error) {
	b, _, size, err := encodeDirectInto(nil, protocol, kind, requestID, msg)
	return b, int64(size), err
}

// encodeDirectPooled is encodeDirect into a buffer of pool, which it returns with the bytes so that the caller
// gives it back once they are dead; with a nil pool, the bytes are a new slice of their exact size and the buffer
// is nil.
func encodeDirectPooled(pool *session.BufferPool, protocol string, kind messages.DirectKind, requestID uint64,
	msg proto.Message) ([]byte, *[]byte, error) {
	b, buf, _, err := encodeDirectInto(pool, protocol, kind, requestID, msg)
	return b, buf, err
}

// encodeDirectInto is encodeDirectPooled that also returns the payload's size (msgSize).
func encodeDirectInto(pool *session.BufferPool, protocol string, kind messages.DirectKind, requestID uint64,
	msg proto.Message) ([]byte, *[]byte, int, error) {
	if msg == nil {
		return nil, nil, 0, fmt.Errorf("%w: nil message", ErrBadPayload)
	}
	if !utf8.ValidString(protocol) {
		// The peer would refuse the frame and drop the whole connection (decodeDirect).
		return nil, nil, 0, fmt.Errorf("%w: protocol %q is not valid UTF-8", ErrBadPayload, protocol)
	}
	typeURL := typeURLOf(msg)
	msgSize := proto.Size(msg)
	anySize := protowire.SizeTag(anyTypeURLField) + protowire.SizeBytes(len(typeURL))
	if msgSize > 0 {
		anySize += protowire.SizeTag(anyValueField) + protowire.SizeBytes(msgSize)
	}
	directSize := protowire.SizeTag(directPayloadField) + protowire.SizeBytes(anySize)
	if protocol != "" {
		directSize += protowire.SizeTag(directProtocolField) + protowire.SizeBytes(len(protocol))
	}
	if kind != 0 {
		directSize += protowire.SizeTag(directKindField) + protowire.SizeVarint(uint64(kind))
	}
	if requestID != 0 {
		directSize += protowire.SizeTag(directRequestField) + protowire.SizeVarint(requestID)
	}
	size := protowire.SizeTag(envelopeDirectField) + protowire.SizeBytes(directSize)
	var buf *[]byte
	var b []byte
	if pool != nil {
		buf = pool.Get(size)
		b = (*buf)[:0]
	} else {
		b = make([]byte, 0, size)
	}
	b = protowire.AppendTag(b, envelopeDirectField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(directSize))
	if protocol != "" {
		b = protowire.AppendTag(b, directProtocolField, protowire.BytesType)
		b = protowire.AppendString(b, protocol)
	}
	if kind != 0 {
		b = protowire.AppendTag(b, directKindField, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kind))
	}
	if requestID != 0 {
		b = protowire.AppendTag(b, directRequestField, protowire.VarintType)
		b = protowire.AppendVarint(b, requestID)
	}
	b = protowire.AppendTag(b, directPayloadField, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anySize))
	b = protowire.AppendTag(b, anyTypeURLField, protowire.BytesType)
	b = protowire.AppendString(b, typeURL)
	if msgSize > 0 {
		b = protowire.AppendTag(b, anyValueField, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(msgSize))
		var err error
		if b, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(b, msg); err != nil {
			pool.Put(buf)
			return nil, nil, 0, fmt.Errorf("%w: %w", ErrBadPayload, err)
		}
	}
	if len(b) != size { // the bytes outgrew the buffer only if they outgrew size
		pool.Put(buf)
		return nil, nil, 0, fmt.Errorf("%w: message changed while being encoded", ErrBadPayload)
	}
	return b, buf, msgSize, nil
}

// typeURLOf is the type URL an Any of msg carries.
func typeURLOf(msg proto.Message) string {
	return typeURLPrefix + string(msg.ProtoReflect().Descriptor().FullName())
}

// direct is a decoded Direct message whose payload is still encoded (it aliases the read buffer).
type direct struct {
	protocol   string
	kind       messages.DirectKind
	requestID  uint64
	hasPayload bool
	typeURL    string
	value      []byte
	err        *messages.RemoteError
	names      *recentNames   // the connection's, or a fresh one
	route      *protocolRoute // the connection reader's last registry lookup
}

// recentNames keeps the protocol and payload type a connection read last: the next message's are usually the
// same, and then need no new string.
type recentNames struct{ protocol, typeURL string }

// name returns v as a string, *last when equal to it; the new string is remembered in *last otherwise.
func name(last *string, v []byte) string {
	if *last != string(v) { // compared without a conversion
		*last = string(v)
	}
	return *last
}

// inboundDecoder decodes what one connection reads. Its direct is reused for every message (onDirect keeps
// nothing of it: the payload aliases the read buffer anyway), and so are the recent names and the last route.
type inboundDecoder struct {
	d     direct
	names recentNames
	route protocolRoute
}

func (dec *inboundDecoder) decode(b []byte) (*direct, *messages.Envelope, error) {
	dec.d = direct{names: &dec.names, route: &dec.route}
	return decodeInboundInto(&dec.d, b)
}

// payload decodes the typed payload. The message type must be linked into the program (protoregistry).
func (d *direct) payload() (proto.Message, error) {
	if !d.hasPayload {
		return nil, errMissingPayload
	}
	return decodePayload(d.typeURL, d.value)
}

var errMissingPayload = errors.New("message without payload")

// decodePayload decodes the value of an Any of the given type URL.
func decodePayload(typeURL string, value []byte) (proto.Message, error) {
	if isGossipRPCURL(typeURL) {
		m, err := messages.UnmarshalGossipRPC(value)
		if err != nil {
			return nil, fmt.Errorf("malformed %s payload: %w", typeURL, err)
		}
		return m, nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(typeURL)
	if err != nil {
		return nil, fmt.Errorf("unknown payload type %q: %w", clipText(typeURL, maxErrorText), err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(value, m); err != nil {
		return nil, fmt.Errorf("malformed %s payload: %w", typeURL, err)
	}
	return m, nil
}

// isGossipRPCURL reports whether typeURL is the one encodeDirect writes for a messages.GossipRPC, whose payloads
// payload decodes with messages.UnmarshalGossipRPC (same result, far fewer allocations).
func isGossipRPCURL(typeURL string) bool {
	name, ok := strings.CutPrefix(typeURL, typeURLPrefix)
	return ok && protoreflect.FullName(name) == (*messages.GossipRPC)(nil).ProtoReflect().Descriptor().FullName()
}

var errNotDirect = errors.New("not a direct message")

// consumeTag is protowire.ConsumeTag restricted to the field numbers proto.Unmarshal accepts: protowire reads
// numbers up to 2^31-1, the protobuf wire format allows at most 2^29-1.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -2 // protowire's "invalid field number"
	}
	return num, typ, n
}

// skipField skips the value of a field the fast path does not know. Groups are refused (our messages never use
// them, and their nested tags would escape consumeTag's check), so the fast path never accepts bytes that
// proto.Unmarshal rejects.
func skipField(num protowire.Number, typ protowire.Type, b []byte) int {
	if typ == protowire.StartGroupType || typ == protowire.EndGroupType {
		return -4 // reported as a reserved (here: deprecated) wire type
	}
	return protowire.ConsumeFieldValue(num, typ, b)
}

// decodeInbound decodes one envelope read from a peer: a direct message through the fast path, anything else
// through decodeEnvelope. Exactly one of the results is non-nil.
func decodeInbound(b []byte) (*direct, *messages.Envelope, error) {
	return decodeInboundInto(&direct{names: &recentNames{}}, b)
}

// decodeInboundInto is decodeInbound decoding a direct message into d, which must be zero but for its names (set).
func decodeInboundInto(d *direct, b []byte) (*direct, *messages.Envelope, error) {
	d, err := decodeDirectInto(d, b)
	if err == nil {
		return d, nil, nil
	}
	if !errors.Is(err, errNotDirect) {
		return nil, nil, err
	}
	env, err := decodeEnvelope(b)
	return nil, env, err
}

// decodeDirect parses an envelope whose body is a direct message, or returns errNotDirect when its body is
// something else (the caller then uses decodeEnvelope). Any other error means the bytes are malformed.
func decodeDirect(b []byte) (*direct, error) {
	return decodeDirectInto(&direct{names: &recentNames{}}, b)
}

// decodeDirectInto is decodeDirect into d, which must be zero but for its names (set).
func decodeDirectInto(d *direct, b []byte) (*direct, error) {
	found := false
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("malformed envelope: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == envelopeDirectField && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, fmt.Errorf("malformed envelope: %w", protowire.ParseError(m))
			}
			// A repeated body field merges into the same message, as proto.Unmarshal does.
			if err := d.mergeBody(v); err != nil {
				return nil, err
			}
			found, b = true, b[m:]
			continue
		}
		if envelopeFields.ByNumber(num) != nil {
			// Another body field (or a malformed direct field): the generic decoder handles the envelope. Every
			// field of Envelope is one of its body's: checked against the schema, so that a body added to it is
			// not skipped as unknown here (window_update and window_blocked were, and a direct message followed
			// by a window_blocked, which proto.Unmarshal reads as the latter, was taken as the former).
			return nil, errNotDirect
		}
		m := skipField(num, typ, b)
		if m < 0 {
			return nil, fmt.Errorf("malformed envelope: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	if !found {
		return nil, errNotDirect
	}
	switch d.kind {
	case messages.DirectKind_DIRECT_KIND_ONEWAY:
	case messages.DirectKind_DIRECT_KIND_REQUEST, messages.DirectKind_DIRECT_KIND_RESPONSE, messages.DirectKind_DIRECT_KIND_ERROR:
		if d.requestID == 0 {
			return nil, fmt.Errorf("%s without request id", d.kind)
		}
	default:
		return nil, fmt.Errorf("direct message of unknown kind %d", d.kind)
	}
	return d, nil
}

// mergeBody merges one encoded Direct message into d.
func (d *direct) mergeBody(body []byte) error {
	for len(body) > 0 {
		num, typ, n := consumeTag(body)
		if n < 0 {
			return fmt.Errorf("malformed direct message: %w", protowire.ParseError(n))
		}
		body = body[n:]
		var m int
		switch {
		case num == directProtocolField && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(body); m >= 0 {
				if !utf8.Valid(v) {
					return errors.New("malformed direct message: protocol is not UTF-8")
				}
				d.protocol = name(&d.names.protocol, v)
			}
		case num == directKindField && typ == protowire.VarintType:
			var v uint64
			v, m = protowire.ConsumeVarint(body)
			d.kind = messages.DirectKind(int32(v))
		case num == directRequestField && typ == protowire.VarintType:
			d.requestID, m = protowire.ConsumeVarint(body)
		case num == directPayloadField && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(body); m >= 0 {
				if err := d.parseAny(v); err != nil {
					return err
				}
			}
		case num == directErrorField && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(body); m >= 0 {
				if d.err == nil {
					d.err = &messages.RemoteError{}
				}
				if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, d.err); err != nil {
					return fmt.Errorf("malformed direct message error: %w", err)
				}
			}
		case num >= directProtocolField && num <= directErrorField:
			return fmt.Errorf("malformed direct message: field %d has wire type %d", num, typ)
		default:
			m = skipField(num, typ, body)
		}
		if m < 0 {
			return fmt.Errorf("malformed direct message: %w", protowire.ParseError(m))
		}
		body = body[m:]
	}
	return nil
}

// parseAny merges one occurrence of the Any payload field, as proto merging would.
func (d *direct) parseAny(b []byte) error {
	d.hasPayload = true
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return fmt.Errorf("malformed payload: %w", protowire.ParseError(n))
		}
		b = b[n:]
		var m int
		switch {
		case num == anyTypeURLField && typ == protowire.BytesType:
			var v []byte
			if v, m = protowire.ConsumeBytes(b); m >= 0 {
				if !utf8.Valid(v) {
					return errors.New("malformed payload: type URL is not UTF-8")
				}
				d.typeURL = name(&d.names.typeURL, v)
			}
		case num == anyValueField && typ == protowire.BytesType:
			d.value, m = protowire.ConsumeBytes(b)
		case num == anyTypeURLField || num == anyValueField:
			return fmt.Errorf("malformed payload: field %d has wire type %d", num, typ)
		default:
			m = skipField(num, typ, b)
		}
		if m < 0 {
			return fmt.Errorf("malformed payload: %w", protowire.ParseError(m))
		}
		b = b[m:]
	}
	return nil
}
