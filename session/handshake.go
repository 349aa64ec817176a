package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/flynn/noise"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
)

// ProtocolVersion is the wire protocol version spoken by this package.
const ProtocolVersion = "actormesh/1"

// Defaults of HandshakeConfig.
const (
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultMaxMessageSize   = 1 << 20
)

// Errors of Handshake. Every error Handshake returns for a failed handshake wraps exactly one of them.
var (
	// ErrHandshake is a generic handshake failure: a malformed or undecryptable handshake message, a malformed
	// payload, the peer closing the connection, or an I/O error.
	ErrHandshake = errors.New("session: handshake failed")
	// ErrWrongPeer means the dialer reached a node other than the one it expected.
	ErrWrongPeer = errors.New("session: wrong peer")
	// ErrNetworkMismatch means the peer belongs to another network.
	ErrNetworkMismatch = errors.New("session: network id mismatch")
	// ErrVersionMismatch means the peer speaks another protocol version.
	ErrVersionMismatch = errors.New("session: protocol version mismatch")
	// ErrBadSignature means the peer's identity did not sign its Noise static key.
	ErrBadSignature = errors.New("session: bad identity signature")
	// ErrHandshakeTimeout means the handshake did not finish within its deadline.
	ErrHandshakeTimeout = errors.New("session: handshake timed out")
)

// noisePrologue is mixed into the Noise handshake hash. It stays the same in later protocol versions so that a
// version mismatch surfaces as ErrVersionMismatch from the payload rather than as a decryption failure.
const noisePrologue = "actormesh/1"

// maxHandshakeMessage bounds one handshake message on the wire (without its 2-byte length prefix).
const maxHandshakeMessage = 4096

// cipherSuiteFor returns the Noise cipher suite: Noise_XX_25519_AESGCM_SHA256. AES-GCM was chosen by
// BenchmarkCipherSuites: on the target CPUs (AES-NI) it seals 1 KiB transport messages about twice as fast as
// ChaCha20-Poly1305. The suite is fixed: XX cannot negotiate it.
func cipherSuiteFor(dh noise.DHFunc) noise.CipherSuite {
	return noise.NewCipherSuite(dh, aesGCM{}, noise.HashSHA256)
}

// HandshakeConfig is the local side's part of a handshake.
type HandshakeConfig struct {
	// Identity is the local node's identity; required.
	Identity *Identity
	// NetworkID names the network; the peer must declare the same one.
	NetworkID string
	// ListenAddrs are the host:port addresses the local node accepts connections on, told to the peer.
	ListenAddrs []string
	// Timeout bounds the whole handshake; 0 means DefaultHandshakeTimeout.
	Timeout time.Duration
	// MaxMessageSize is the largest application message the resulting Conn reads, told to the peer, and the
	// largest it writes unless the peer reads less (Conn.MaxSendSize); 0 means DefaultMaxMessageSize, and less
	// than MinPeerMessageSize is refused (peers would refuse it).
	MaxMessageSize int
	// Transient tells the peer that the dialer opens this connection on demand and does not keep it.
	Transient bool
	// InboundWindow is what the local node takes of the peer's messages to its application protocols before it
	// grants more, told to the peer; the zero Window means DefaultInboundWindow().
	InboundWindow Window
	// RekeyInterval is how many transport frames each direction of the resulting Conn seals under one AES-GCM key
	// before both ends replace it with Noise's REKEY of it, told to the peer; the connection uses the smaller of
	// the two sides' values (Conn.RekeyInterval), and no rekeying at all with a peer of a build that does not
	// rekey. 0 means DefaultRekeyInterval; otherwise it must be in MinRekeyInterval..MaxRekeyInterval.
	RekeyInterval int
	// Buffers lends the resulting Conn (and the handshake) the buffers it needs beyond a small fixed one, for
	// as long as it needs them; share one pool among the connections of a node. Nil means buffers are allocated
	// as needed and dropped when no longer needed.
	Buffers *BufferPool
}

// PeerInfo is what the remote proved or declared in the handshake.
type PeerInfo struct {
	// ID is the peer's identity, proven by its signature over its Noise static key.
	ID NodeID
	// NetworkID is the network the peer declared (equal to the local one).
	NetworkID string
	// ProtocolVersion is the version the peer declared (equal to ProtocolVersion).
	ProtocolVersion string
	// ListenAddrs are the addresses the peer says it accepts connections on; they are not verified.
	ListenAddrs []string
	// Transient is set when the peer dialed the connection on demand, without keeping it.
	Transient bool
	// InboundWindow is what the peer takes of the local node's messages to its application protocols before it
	// grants more; every field is positive (a peer advertising none is refused).
	InboundWindow Window
	// MaxMessageSize is the largest application message the peer reads (its HandshakeConfig.MaxMessageSize), at
	// least MinPeerMessageSize and at most MaxMessageSizeLimit.
	MaxMessageSize int
	// RekeyInterval is the peer's HandshakeConfig.RekeyInterval, at least MinRekeyInterval, or 0 for a peer of a
	// build that does not rekey.
	RekeyInterval uint64
}

// Window is what a node takes of one peer's one-way messages and requests to its application protocols that its
// protocol actors have not processed yet, before it grants more (flow control): per protocol and for all of them
// together, in messages and in payload bytes. A sender keeps within the peer's Window; one message of any size may
// go to a protocol that has nothing outstanding.
type Window struct {
	ProtocolMessages, ProtocolBytes, AppMessages, AppBytes int64
}

// MaxWindow bounds each field of a Window read from a peer, so that sums of a few of them cannot overflow.
const MaxWindow = math.MaxInt64 / 8

// DefaultInboundWindow returns the Window of a HandshakeConfig that sets none: half of 4096 messages and 4 MiB per
// protocol, three quarters for all (actors.Config's defaults).
func DefaultInboundWindow() Window {
	return Window{ProtocolMessages: 2048, ProtocolBytes: 2 << 20, AppMessages: 3072, AppBytes: 3 << 20}
}

// Valid tells whether every field of w is positive and at most MaxWindow.
func (w Window) Valid() bool {
	for _, v := range []int64{w.ProtocolMessages, w.ProtocolBytes, w.AppMessages, w.AppBytes} {
		if v <= 0 || v > MaxWindow {
			return false
		}
	}
	return true
}

// MaxMessageSizeLimit is the largest HandshakeConfig.MaxMessageSize: a message's length travels in 4 bytes.
const MaxMessageSizeLimit = math.MaxUint32

// MinPeerMessageSize is the smallest message size limit a peer may announce: every control message (an error
// reply, a pong, a window update, a goodbye) fits it. A peer announcing 14 bytes had the node drop, and log at
// error, each control message it owed it, at the peer's request rate (an audit's finding).
const MinPeerMessageSize = 4 << 10

// Handshake runs the Noise XX handshake over conn, as the initiator (the dialer) or the responder, and returns
// the secure connection. A dialer passes the NodeID it wants to reach as expected; the zero NodeID accepts any
// peer. A responder's non-zero expected is checked too: the responder learns the peer's identity from the last
// message only, so there the peer's side may succeed while the responder's fails with ErrWrongPeer.
// The handshake must finish before the earlier of ctx's deadline and cfg.Timeout; cancelling ctx aborts it.
// Handshake sets a deadline on conn and clears it when done. On failure it leaves conn open (the caller closes
// it) and returns an error wrapping one of ErrHandshake, ErrWrongPeer, ErrNetworkMismatch, ErrVersionMismatch,
// ErrBadSignature or ErrHandshakeTimeout (or a plain error for an invalid cfg).
func Handshake(ctx context.Context, conn net.Conn, cfg HandshakeConfig, initiator bool, expected NodeID) (*Conn, error) {
	if !cfg.Identity.Valid() { // nil, or the zero Identity, which holds no key
		return nil, errors.New("session: HandshakeConfig.Identity holds no key")
	}
	if cfg.Timeout < 0 || cfg.MaxMessageSize < 0 || cfg.MaxMessageSize > 0 && cfg.MaxMessageSize < MinPeerMessageSize ||
		int64(cfg.MaxMessageSize) > MaxMessageSizeLimit {
		return nil, fmt.Errorf("session: HandshakeConfig: Timeout must not be negative, MaxMessageSize must be 0 or in %d..2^32-1 (peers refuse less)", MinPeerMessageSize)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultHandshakeTimeout
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.RekeyInterval == 0 {
		cfg.RekeyInterval = DefaultRekeyInterval
	}
	if cfg.RekeyInterval < MinRekeyInterval || cfg.RekeyInterval > MaxRekeyInterval {
		return nil, fmt.Errorf("session: HandshakeConfig.RekeyInterval %d: must be 0 or in %d..%d frames",
			cfg.RekeyInterval, MinRekeyInterval, MaxRekeyInterval)
	}
	if cfg.InboundWindow == (Window{}) {
		cfg.InboundWindow = DefaultInboundWindow()
	}
	if !cfg.InboundWindow.Valid() {
		return nil, fmt.Errorf("session: HandshakeConfig.InboundWindow %+v: every field must be in 1..%d", cfg.InboundWindow, int64(MaxWindow))
	}
	static, staticSig, err := cfg.Identity.noiseStatic()
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(&messages.HandshakePayload{
		IdentityKey:     cfg.Identity.NodeID().Bytes(),
		Signature:       staticSig,
		NetworkId:       cfg.NetworkID,
		ProtocolVersion: ProtocolVersion,
		ListenAddrs:     cfg.ListenAddrs,
		Transient:       cfg.Transient,
		InboundWindow: &messages.InboundWindow{
			ProtocolMessages: uint64(cfg.InboundWindow.ProtocolMessages), ProtocolBytes: uint64(cfg.InboundWindow.ProtocolBytes),
			AppMessages: uint64(cfg.InboundWindow.AppMessages), AppBytes: uint64(cfg.InboundWindow.AppBytes),
		},
		MaxMessageSize: uint64(cfg.MaxMessageSize),
		RekeyInterval:  uint64(cfg.RekeyInterval),
	})
	if err != nil {
		return nil, fmt.Errorf("session: marshal handshake payload: %w", err)
	}
	// Message 2 carries e, the encrypted s and the encrypted payload.
	if overhead := 32 + 48 + 16; len(payload)+overhead > maxHandshakeMessage {
		return nil, fmt.Errorf("session: handshake payload of %d bytes is too large (listen addresses?)", len(payload))
	}

	if err := ctx.Err(); err != nil {
		return nil, contextError("start", err)
	}
	deadline := time.Now().Add(cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("%w: set deadline: %w", ErrHandshake, err)
	}
	// Cancelling ctx interrupts blocked I/O by moving the deadline into the past.
	var interrupted sync.WaitGroup
	interrupted.Add(1)
	stop := context.AfterFunc(ctx, func() {
		defer interrupted.Done()
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	defer func() {
		if stop() {
			interrupted.Done()
		}
		interrupted.Wait() // the interrupt must not land after the deadline is cleared
		_ = conn.SetDeadline(time.Time{})
	}()

	h := handshake{
		ctx:      ctx,
		conn:     conn,
		fr:       frameReader{src: conn, pool: cfg.Buffers},
		cfg:      cfg,
		timeout:  time.Until(deadline),
		expected: expected,
		payload:  payload,
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuiteFor(x25519DH{}),
		Random:        rand.Reader,
		Pattern:       noise.HandshakeXX,
		Initiator:     initiator,
		Prologue:      []byte(noisePrologue),
		StaticKeypair: noise.DHKey{Private: static.Bytes(), Public: static.PublicKey().Bytes()},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	var c *Conn
	if initiator {
		c, err = h.runInitiator(hs)
	} else {
		c, err = h.runResponder(hs)
	}
	if err != nil {
		h.fr.discard() // no Conn took over the read buffer
	}
	return c, err
}

// handshake is the state of one Handshake call.
type handshake struct {
	ctx      context.Context
	conn     net.Conn
	fr       frameReader
	cfg      HandshakeConfig
	timeout  time.Duration
	expected NodeID
	payload  []byte // the local, marshaled HandshakePayload
}

// runInitiator: -> e; <- e, ee, s, es, payload; -> s, se, payload.
func (h *handshake) runInitiator(hs *noise.HandshakeState) (*Conn, error) {
	msg, _, _, err := hs.WriteMessage(nil, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: message 1: %w", ErrHandshake, err)
	}
	if err := h.write(msg, "message 1"); err != nil {
		return nil, err
	}
	msg, err = h.read("message 2")
	if err != nil {
		return nil, err
	}
	remote, _, _, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: message 2: %w", ErrHandshake, err)
	}
	// Check the responder before revealing the local identity in message 3.
	peer, err := h.verifyPayload(remote, hs.PeerStatic())
	if err != nil {
		return nil, err
	}
	msg, send, recv, err := hs.WriteMessage(nil, h.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: message 3: %w", ErrHandshake, err)
	}
	if err := h.write(msg, "message 3"); err != nil {
		return nil, err
	}
	return h.newConnAfter(send, recv, peer), nil
}

// newConnAfter returns the Conn of a finished handshake.
func (h *handshake) newConnAfter(send, recv *noise.CipherState, peer PeerInfo) *Conn {
	return newConn(h.conn, h.fr, send, recv, peer, h.cfg.MaxMessageSize, rekeyInterval(uint64(h.cfg.RekeyInterval), peer.RekeyInterval))
}

// runResponder mirrors runInitiator.
func (h *handshake) runResponder(hs *noise.HandshakeState) (*Conn, error) {
	msg, err := h.read("message 1")
	if err != nil {
		return nil, err
	}
	early, _, _, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: message 1: %w", ErrHandshake, err)
	}
	if len(early) != 0 {
		return nil, fmt.Errorf("%w: message 1 carries an unexpected %d-byte payload", ErrHandshake, len(early))
	}
	msg, _, _, err = hs.WriteMessage(nil, h.payload)
	if err != nil {
		return nil, fmt.Errorf("%w: message 2: %w", ErrHandshake, err)
	}
	if err := h.write(msg, "message 2"); err != nil {
		return nil, err
	}
	msg, err = h.read("message 3")
	if err != nil {
		return nil, err
	}
	remote, recv, send, err := hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: message 3: %w", ErrHandshake, err)
	}
	peer, err := h.verifyPayload(remote, hs.PeerStatic())
	if err != nil {
		return nil, err
	}
	return h.newConnAfter(send, recv, peer), nil
}

// clampWindow is a Window field read from a peer, at most MaxWindow.
func clampWindow(v uint64) int64 { return int64(min(v, MaxWindow)) }

// verifyPayload checks the peer's payload against its Noise static key and the local expectations.
func (h *handshake) verifyPayload(b, remoteStatic []byte) (PeerInfo, error) {
	var p messages.HandshakePayload
	if err := proto.Unmarshal(b, &p); err != nil {
		return PeerInfo{}, fmt.Errorf("%w: malformed payload: %w", ErrHandshake, err)
	}
	id, err := NodeIDFromBytes(p.IdentityKey)
	if err != nil {
		return PeerInfo{}, fmt.Errorf("%w: payload identity key: %w", ErrHandshake, err)
	}
	if p.ProtocolVersion != ProtocolVersion {
		return PeerInfo{}, fmt.Errorf("%w: a peer claiming %s speaks %q, we speak %q",
			ErrVersionMismatch, id.Short(), p.ProtocolVersion, ProtocolVersion)
	}
	if p.NetworkId != h.cfg.NetworkID {
		return PeerInfo{}, fmt.Errorf("%w: a peer claiming %s is on network %q, we are on %q",
			ErrNetworkMismatch, id.Short(), p.NetworkId, h.cfg.NetworkID)
	}
	if !id.Verify(noiseStaticMessage(remoteStatic), p.Signature) {
		return PeerInfo{}, fmt.Errorf("%w: peer claiming %s did not sign its noise static key", ErrBadSignature, id)
	}
	w := p.GetInboundWindow()
	window := Window{clampWindow(w.GetProtocolMessages()), clampWindow(w.GetProtocolBytes()),
		clampWindow(w.GetAppMessages()), clampWindow(w.GetAppBytes())}
	if !window.Valid() {
		return PeerInfo{}, fmt.Errorf("%w: peer %s advertises no inbound window (flow control): %+v", ErrHandshake, id.Short(), window)
	}
	if p.MaxMessageSize == 0 {
		return PeerInfo{}, fmt.Errorf("%w: peer %s advertises no message size limit (a build older than the field?)",
			ErrHandshake, id.Short())
	}
	if p.MaxMessageSize < MinPeerMessageSize {
		return PeerInfo{}, fmt.Errorf("%w: peer %s advertises a message size limit of %d bytes, under %d",
			ErrHandshake, id.Short(), p.MaxMessageSize, MinPeerMessageSize)
	}
	if p.RekeyInterval != 0 && p.RekeyInterval < MinRekeyInterval {
		return PeerInfo{}, fmt.Errorf("%w: peer %s advertises a rekey interval of %d frames, under %d",
			ErrHandshake, id.Short(), p.RekeyInterval, MinRekeyInterval)
	}
	if !h.expected.IsZero() && id != h.expected {
		return PeerInfo{}, fmt.Errorf("%w: expected %s, got %s", ErrWrongPeer, h.expected, id)
	}
	return PeerInfo{
		ID:              id,
		NetworkID:       p.NetworkId,
		ProtocolVersion: p.ProtocolVersion,
		ListenAddrs:     slices.Clone(p.ListenAddrs),
		Transient:       p.Transient,
		InboundWindow:   window,
		MaxMessageSize:  int(min(p.MaxMessageSize, MaxMessageSizeLimit)),
		RekeyInterval:   p.RekeyInterval,
	}, nil
}

// write sends one length-prefixed handshake message.
func (h *handshake) write(msg []byte, what string) error {
	frame := make([]byte, 2, 2+len(msg))
	frame[0], frame[1] = byte(len(msg)>>8), byte(len(msg))
	if _, err := h.conn.Write(append(frame, msg...)); err != nil {
		return h.ioError("write "+what, err)
	}
	return nil
}

// read receives one length-prefixed handshake message.
func (h *handshake) read(what string) ([]byte, error) {
	msg, err := h.fr.next(maxHandshakeMessage)
	if err != nil {
		return nil, h.ioError("read "+what, err)
	}
	return msg, nil
}

// ioError classifies an I/O error of the handshake.
func (h *handshake) ioError(op string, err error) error {
	if cerr := h.ctx.Err(); cerr != nil {
		return contextError(op, cerr)
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s: no answer within %v", ErrHandshakeTimeout, op, h.timeout.Round(time.Millisecond))
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: peer closed the connection: %w", ErrHandshake, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrHandshake, op, err)
}

// contextError is the handshake error for a done context: a timeout for an expired deadline.
func contextError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrHandshakeTimeout, op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrHandshake, op, err)
}
