package actors

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// closeFlushTimeout bounds the final writes (queued data on a graceful close, then the Disconnect notice).
const closeFlushTimeout = time.Second

// connHandler receives what a connection's reader decodes. It is implemented by the Node.
type connHandler interface {
	// onDirect handles a direct message.
	onDirect(pc *peerConn, d *direct)
	// onPong handles a pong that does not answer a keepalive ping (it may answer an API ping).
	onPong(pc *peerConn, nonce uint64)
}

// peerConn is one authenticated connection: a bounded outbound queue drained by a writer goroutine and a reader
// goroutine that decodes envelopes and hands them to the handler. The writer runs only while something is queued
// (an idle connection holds one goroutine, its reader); keepalive pings come from a timer. Its goroutines are owned
// by the connection actor, which starts them and waits for them when it stops. Other goroutines use it only through
// send and shutdown.
type peerConn struct {
	id       session.NodeID
	connID   uint64
	outbound bool
	sc       *session.Conn
	cfg      *Config
	log      *zerolog.Logger // the node's
	handler  connHandler
	q        *sendQueue
	credits  chan struct{}
	// heldBytes is the payload bytes of the messages that hold credits (Config.InboundPendingBytes). Only the
	// reader adds to it; when it waits for bytes it sets bytesWaiting, and a release then signals bytesFreed.
	heldBytes    atomic.Int64
	bytesWaiting atomic.Bool
	bytesFreed   chan struct{}
	// held is, for each protocol actor the reader handed messages to, the credits those messages hold; heldGen is
	// the registry's generation when held was last pruned. Both are the reader's.
	held    map[*registration]*heldCredits
	heldGen uint64
	// out and in are the two sides of flow control (flow.go): the peer's window for the node's messages to its
	// application protocols, and the node's for the peer's.
	out sendWindows
	in  recvWindows

	closing   chan struct{}
	closeOnce sync.Once
	// halt is closed once the reader delivers nothing more: with closing, except on a close as a duplicate this
	// node decided, where the peer may have sent on the connection before it learned of the tie-break; the reader
	// then delivers until the peer's goodbye or the end of the linger (stopDelivery).
	halt     chan struct{}
	haltOnce sync.Once
	// deadlineMu orders shutdown's write deadline against the writer's, so a closing connection's deadline is
	// never pushed back out by a new batch.
	deadlineMu sync.Mutex
	// writeDeadlineSet is when writeBatch last moved the write deadline (guarded by deadlineMu).
	writeDeadlineSet time.Time

	reason   messages.DisconnectReason // written once before closing is closed
	detail   string
	byRemote bool
	// awaitPeer, written once before closing is closed, is set on the losing connection of a simultaneous dial
	// that this node closes (closeDuplicate): its linger waits for the peer's goodbye or half-close up to
	// duplicateLinger, not closeFlushTimeout, since the peer may have sent on it before it learned of the
	// tie-break.
	awaitPeer bool
	// peerEnded is set by the reader when it ends on the peer's goodbye or half-close (io.EOF): the peer sent
	// nothing more (reader only, read once readerDone is closed).
	peerEnded  bool
	done       chan struct{}
	readerDone chan struct{}
	running    atomic.Int32
	exit       func() // called by the reader when it ends and by the writer that finishes the connection

	// spare is the last batch's slices, reused by the next writer.
	spare batch
	// pingMu guards the keepalive timer; pingsStopped is set once the connection finished.
	pingMu       sync.Mutex
	pingTimer    *time.Timer
	pingsStopped bool

	// lastActive is when a direct message last went either way (pc.mono); kept is set for peers the node
	// keeps connected. Idle connections that are not kept make room for new outbound dials.
	lastActive atomic.Int64
	kept       atomic.Bool
	// inflight counts the node's requests and pings awaiting an answer on this connection: a connection with one
	// is never closed to make room.
	inflight atomic.Int32
	// owed counts the peer's requests handed to a protocol actor and not answered yet (see owes).
	owed atomic.Int32
	// remoteTransient is set on an inbound connection whose dialer declared it transient (not kept), and cleared
	// once the dialer says it keeps it after all (a Ping with keeps).
	remoteTransient atomic.Bool
	// forTopics is set while the node keeps the connection only because topic discovery made or kept it, and
	// released once the relay released it (the peer shares none of its topics, peerManager.release): it is then
	// transient, closed after DiscoveryIdleTimeout idle, and a search does not keep it again; the relay keeps it
	// again if the peer shares a topic again (peerManager.keepAgain). Another reason to keep it clears both. The
	// peer manager's alone: it alone reads and writes them.
	forTopics, released bool
	// gossiping is set once the peer started gossip on the connection (it upgraded a transient connection to a
	// kept one on its side): the connection is no longer closed as transient.
	gossiping atomic.Bool
	// lastRelayed is when (unix nanos, to the relay's heartbeat) the peer last was the first to deliver a gossip
	// message the relay accepted; 0: never. Inbound eviction protects the peers that relayed most recently.
	lastRelayed atomic.Int64
	// appUsed is set once the application used the connection (Send, Request, Ping or Connect): a transient
	// connection without it was dialed by discovery and closes after DiscoveryIdleTimeout.
	appUsed atomic.Bool
	// used is set once the node sends on the connection or makes a request on it.
	used atomic.Bool

	rttNanos atomic.Int64
	// kaNonce counts the keepalive pings sent; the last one's nonce is kaNonce | keepaliveNonce.
	kaNonce atomic.Uint64
	kaSent  atomic.Int64 // when the last keepalive ping was queued (pc.mono), 0 before the first
	// lastRecv is when the reader last received a frame (pc.mono): a connection that received one within
	// PingInterval needs no keepalive ping.
	lastRecv atomic.Int64
	// connectedAt is when the connection was made, with the monotonic clock's reading: the timestamps above are
	// nanoseconds since (mono). They were wall-clock unix nanoseconds, and a wall clock stepped back stopped the
	// keepalive pings, so that both ends of a live quiet connection closed it as idle.
	connectedAt time.Time

	// requestsFailed is the error requests on the connection fail with once it was unregistered (requestTable's
	// failConn; guarded by the request table's lock).
	requestsFailed error
	// retired is set on a connection closed as a duplicate as it came up, never registered (peerManager.retire).
	retired bool

	// dropped is how many queued messages were never written: too large, in a batch whose write failed, or left
	// at close (counted by the writers, one at a time, before done is closed).
	dropped int
	// drained is how many messages the reader read and dropped on the closing connection (drain; reader only,
	// read once done is closed).
	drained int
	// cutShort is set when the connection, the losing one of a simultaneous dial, closed before the peer finished
	// with it (warnCutShort; the writer's, read once done is closed).
	cutShort bool
	// countedIn and countedOut are the byte counts added to the node's totals when the connection left the peer
	// set (guarded by the peer set's lock); the rest is added once it is done.
	countedIn, countedOut uint64
}

func newPeerConn(sc *session.Conn, connID uint64, outbound bool, cfg *Config, log *zerolog.Logger, h connHandler) *peerConn {
	pc := &peerConn{
		id:          sc.RemoteID(),
		connID:      connID,
		outbound:    outbound,
		sc:          sc,
		cfg:         cfg,
		log:         log,
		handler:     h,
		credits:     make(chan struct{}, cfg.InboundPending),
		bytesFreed:  make(chan struct{}, 1),
		closing:     make(chan struct{}),
		halt:        make(chan struct{}),
		done:        make(chan struct{}),
		readerDone:  make(chan struct{}),
		connectedAt: time.Now(),
		out:         sendWindows{window: sc.Peer().InboundWindow},
		in:          recvWindows{window: windowOf(cfg)},
	}
	pc.q = newSendQueue(cfg.SendQueueBytes, func() { go pc.runWriter() })
	pc.touch()
	return pc
}

// start launches the reader, the first writer (for what was queued before) and the keepalive pings; onDone runs once
// the reader has exited and a writer has finished the connection (the socket is closed).
func (pc *peerConn) start(onDone func()) {
	pc.running.Store(2)
	pc.exit = func() {
		if pc.running.Add(-1) == 0 {
			close(pc.done)
			onDone()
		}
	}
	pc.lastRecv.Store(pc.mono())
	pc.schedulePing(pc.cfg.PingInterval)
	go func() { defer pc.exit(); defer close(pc.readerDone); defer pc.forgetFlows(); pc.readLoop() }()
	go pc.runWriter()
}

// stopDelivery makes the reader deliver nothing more (it drains what still comes) and ends its waits for credits.
func (pc *peerConn) stopDelivery() { pc.haltOnce.Do(func() { close(pc.halt) }) }

// halted tells whether stopDelivery was called.
func (pc *peerConn) halted() bool {
	select {
	case <-pc.halt:
		return true
	default:
		return false
	}
}

// flushedToRemote tells whether a connection the peer closed still flushes its queue: the peer closed it as a
// duplicate, and reads what this side sent until this side closes too.
func (pc *peerConn) flushedToRemote() bool {
	return pc.byRemote && pc.reason == messages.DisconnectReason_DISCONNECT_REASON_DUPLICATE_CONNECTION
}

// send queues an encoded envelope. A full queue disconnects the peer as too slow.
func (pc *peerConn) send(b []byte) error { return pc.sendPriority(b, false) }

// sendPriority is send that, with priority set, may use the queue's control allowance (gossip control).
func (pc *peerConn) sendPriority(b []byte, priority bool) error { return pc.sendLent(b, nil, priority) }

// sendLent is sendPriority for bytes that lie in a buffer of the connection's pool (Conn.Buffers): the writer
// gives buf back once they are written. On an error, b and buf stay the caller's.
func (pc *peerConn) sendLent(b []byte, buf *[]byte, priority bool) error {
	return pc.queueErr(pc.q.pushLent(b, buf, priority))
}

// sendApp queues an application message (Send, Request, Reply: sendQueue.pushApp). A queue too full for it fails
// with errQueueBusy and the channel to wait on for room; otherwise as send.
func (pc *peerConn) sendApp(b []byte) (room <-chan struct{}, err error) {
	pc.touch()
	pc.used.Store(true)
	room, err = pc.q.pushApp(b)
	if errors.Is(err, errQueueBusy) {
		return room, err
	}
	return nil, pc.queueErr(err)
}

// queueErr is the error of a push to the send queue: a full queue disconnects the peer as too slow.
func (pc *peerConn) queueErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errQueueFull):
		pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER, "outbound queue full")
		return ErrSlowPeer
	default:
		return pc.goneError()
	}
}

// sendControl queues a control envelope (pong, error reply); it may use the control allowance. One that cannot be
// encoded or is over the size limit (a bug, or a peer with a tiny limit: error replies are clipped) is logged and
// dropped.
func (pc *peerConn) sendControl(env *messages.Envelope) {
	b, err := proto.Marshal(env)
	if err == nil {
		err = pc.fits(len(b))
	}
	if err != nil {
		pc.log.Error().Err(err).Str("peer", pc.id.Short()).Msg("control message not sent")
		return
	}
	if err := pc.q.push(b, true); errors.Is(err, errQueueFull) {
		pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER, "outbound queue full")
	}
}

// touch records direct-message activity.
func (pc *peerConn) touch() { pc.lastActive.Store(pc.mono()) }

// mono is the time now in monotonic nanoseconds since the connection was made (connectedAt).
func (pc *peerConn) mono() int64 { return int64(time.Since(pc.connectedAt)) }

// since is how long before now a timestamp of mono was taken.
func (pc *peerConn) since(at int64, now time.Time) time.Duration {
	return now.Sub(pc.connectedAt) - time.Duration(at)
}

// idleFor tells how long no direct message went either way.
func (pc *peerConn) idleFor(now time.Time) time.Duration { return pc.since(pc.lastActive.Load(), now) }

// owes tells whether the node owes the peer a reply: a request is being handled and a direct message went either
// way within IdleTimeout (a handler that never answers does not hold the connection beyond that).
func (pc *peerConn) owes() bool {
	return pc.owed.Load() > 0 && pc.idleFor(time.Now()) < pc.cfg.IdleTimeout
}

// rtt returns the last keepalive round-trip time, or 0 before the first pong.
func (pc *peerConn) rtt() time.Duration { return time.Duration(pc.rttNanos.Load()) }

// PingRate and PingBurst bound the pings a connection answers (per second, and at once): a keepalive comes every
// PingInterval, and API pings are the application's. Past them a ping is dropped unanswered (logged at debug): each
// pong is queued, and a peer that pinged without end and read slowly made the node queue millions of them.
const (
	PingRate  = 20
	PingBurst = 100
)

func (pc *peerConn) readLoop() {
	var lastDeadline time.Time
	var dec inboundDecoder
	pings := routing.NewTokenBucket(PingRate, PingBurst, time.Now())
	// The read deadline moves at most once a second (each move is a system call), and a quarter of IdleTimeout
	// at most after it was set, so that it cannot pass while frames arrive.
	refresh := min(time.Second, pc.cfg.IdleTimeout/4)
	for {
		if now := time.Now(); now.Sub(lastDeadline) > refresh {
			_ = pc.sc.SetReadDeadline(now.Add(pc.cfg.IdleTimeout))
			lastDeadline = now
		}
		b, err := pc.sc.ReadMessageSlice() // decodeInbound and onDirect copy what they keep before the next read
		if err != nil {
			pc.peerEnded = errors.Is(err, io.EOF)
			pc.shutdown(classifyReadError(err))
			return
		}
		pc.lastRecv.Store(pc.mono())
		d, env, err := dec.decode(b)
		if err != nil {
			pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_PROTOCOL_ERROR, err.Error())
			return
		}
		if d != nil {
			pc.handler.onDirect(pc, d)
		} else {
			switch body := env.Body.(type) {
			case *messages.Envelope_Ping:
				if body.Ping.GetKeeps() {
					pc.remoteTransient.Store(false)
				}
				if !pings.Allow(time.Now()) {
					pc.log.Debug().Str("peer", pc.id.Short()).Msg("ping over the rate limit: not answered")
					break
				}
				pc.sendControl(&messages.Envelope{Body: &messages.Envelope_Pong{Pong: &messages.Pong{Nonce: body.Ping.GetNonce()}}})
			case *messages.Envelope_Pong:
				switch nonce := body.Pong.GetNonce(); {
				case nonce&keepaliveNonce == 0:
					pc.handler.onPong(pc, nonce)
				case nonce == pc.kaNonce.Load()|keepaliveNonce: // a late keepalive pong measures nothing
					pc.rttNanos.Store(pc.mono() - pc.kaSent.Load())
				}
			case *messages.Envelope_WindowUpdate:
				pc.onWindowUpdate(body.WindowUpdate)
			case *messages.Envelope_WindowBlocked:
				pc.onWindowBlocked()
			case *messages.Envelope_Disconnect:
				// The detail is the peer's to choose (up to MaxMessageSize): clipped as every other such text, before
				// it reaches events, logs and Stats.
				pc.peerEnded = true
				pc.remoteShutdown(knownReason(body.Disconnect.GetReason(), clipText(body.Disconnect.GetDetail(), maxErrorText)))
				return
			}
		}
		if pc.halted() { // after every message: a closing connection delivers nothing more (see halt)
			pc.drain()
			return
		}
	}
}

// drain reads and drops what the peer still sends on a closing connection, until the peer closes its side or the
// socket is closed (see linger).
func (pc *peerConn) drain() {
	for {
		if _, err := pc.sc.ReadMessage(); err != nil {
			if pc.drained > 0 {
				pc.log.Debug().Str("peer", pc.id.Short()).Int("messages", pc.drained).
					Msg("messages the peer sent after this node closed the connection: dropped")
			}
			return
		}
		pc.drained++
	}
}

// decodeEnvelope parses an envelope that is not a pure direct message (those take decodeDirect's fast path) and
// checks that its body is one the reader handles. A direct body here means an envelope mixing several bodies,
// which no honest peer sends.
func decodeEnvelope(b []byte) (*messages.Envelope, error) {
	env := &messages.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("malformed envelope: %w", err)
	}
	switch env.Body.(type) {
	case *messages.Envelope_Ping, *messages.Envelope_Pong, *messages.Envelope_Disconnect, *messages.Envelope_WindowUpdate,
		*messages.Envelope_WindowBlocked:
		return env, nil
	case *messages.Envelope_Direct:
		return nil, errors.New("malformed envelope: direct message mixed with other bodies")
	default:
		return nil, errors.New("envelope with unknown or empty body")
	}
}

func classifyReadError(err error) (messages.DisconnectReason, string) {
	switch {
	case errors.Is(err, session.ErrMessageTooLarge):
		return messages.DisconnectReason_DISCONNECT_REASON_MESSAGE_TOO_LARGE, err.Error()
	case errors.Is(err, session.ErrBadFrame):
		return messages.DisconnectReason_DISCONNECT_REASON_PROTOCOL_ERROR, err.Error()
	case timedOut(err):
		return messages.DisconnectReason_DISCONNECT_REASON_IDLE_TIMEOUT, "nothing received within the idle timeout"
	default:
		return messages.DisconnectReason_DISCONNECT_REASON_READ_ERROR, err.Error()
	}
}

// runWriter writes what is queued, batch after batch, and ends when the queue is empty (the next push starts a
// writer again) or finishes the connection once it is closing.
func (pc *peerConn) runWriter() {
	for {
		batch, res := pc.q.take(pc.spare)
		switch res {
		case queueIdle:
			return
		case queueStopping:
			pc.finish(true)
			return
		}
		err := pc.writeBatch(batch)
		if errors.Is(err, session.ErrMessageTooLarge) { // nothing was written: a local bug, not the socket's
			batch = pc.dropOversized(batch)
			err = pc.writeBatch(batch)
		}
		pc.q.written()
		if err == nil {
			// Written: the items are dead (the connection copied them), and the buffers lent for them go back.
			pool := pc.sc.Buffers()
			for _, buf := range batch.lent {
				pool.Put(buf)
			}
		}
		if errors.Is(err, errClosing) {
			pc.finish(true)
			return
		} else if err != nil {
			pc.dropped += len(batch.items)
			pc.awaitGoodbye(err)
			pc.shutdown(classifyWriteError(err))
			pc.finish(false)
			return
		}
		clear(batch.items)
		clear(batch.lent)
		pc.spare = batch
	}
}

// dropOversized removes from b (whose lent may be nil), logging and counting them as dropped, the items over
// the connection's MaxSendSize, which it refuses to write: every path that queues checks the size, so one here is
// a bug, which must cost that item and not the connection.
func (pc *peerConn) dropOversized(b batch) batch {
	kept := 0
	for i, item := range b.items {
		if len(item) > pc.sc.MaxSendSize() {
			pc.dropped++
			pc.log.Error().Str("peer", pc.id.Short()).Int("bytes", len(item)).Int("limit", pc.sc.MaxSendSize()).
				Msg("queued message over the size limit: dropped")
			continue
		}
		b.items[kept] = item
		if b.lent != nil {
			b.lent[kept] = b.lent[i]
		}
		kept++
	}
	clear(b.items[kept:])
	b.items = b.items[:kept]
	if b.lent != nil {
		clear(b.lent[kept:]) // their lent buffers go to the collector
		b.lent = b.lent[:kept]
	}
	return b
}

// errClosing stops the writer from starting a batch once shutdown has begun.
var errClosing = errors.New("connection closing")

// writeBatch writes queued envelopes under the WriteTimeout deadline, unless shutdown has begun.
func (pc *peerConn) writeBatch(batch batch) error {
	if len(batch.items) == 0 {
		return nil
	}
	pc.deadlineMu.Lock()
	select {
	case <-pc.closing:
		pc.deadlineMu.Unlock()
		pc.q.requeue(batch)
		return errClosing
	default:
	}
	// The deadline moves at most every writeDeadlineRefresh, as the reader's does: moving it is a timer
	// update (in the runtime's poller for a socket) on every batch otherwise, and a busy link writes many a
	// second. A batch thus has between WriteTimeout - writeDeadlineRefresh and WriteTimeout to go out.
	if now := time.Now(); now.Sub(pc.writeDeadlineSet) > pc.writeDeadlineRefresh() {
		_ = pc.sc.SetWriteDeadline(now.Add(pc.cfg.WriteTimeout))
		pc.writeDeadlineSet = now
	}
	pc.deadlineMu.Unlock()
	return pc.sc.WriteMessages(batch.items...)
}

// writeDeadlineRefresh is how long writeBatch keeps the write deadline it set: a tenth of WriteTimeout, at most
// a second.
func (pc *peerConn) writeDeadlineRefresh() time.Duration {
	return min(time.Second, pc.cfg.WriteTimeout/10)
}

func (pc *peerConn) write(batch [][]byte, timeout time.Duration) error {
	if len(batch) == 0 {
		return nil
	}
	_ = pc.sc.SetWriteDeadline(time.Now().Add(timeout))
	return pc.sc.WriteMessages(batch...)
}

// timedOut tells whether err is a deadline passing.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func classifyWriteError(err error) (messages.DisconnectReason, string) {
	if timedOut(err) {
		return messages.DisconnectReason_DISCONNECT_REASON_SLOW_PEER, "write timed out: peer is not reading"
	}
	return messages.DisconnectReason_DISCONNECT_REASON_WRITE_ERROR, err.Error()
}

// unixNanoTime is the time of unix nanoseconds t, or the zero Time for 0 (an atomic timestamp never set).
func unixNanoTime(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return time.Unix(0, t)
}
