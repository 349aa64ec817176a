package actors

// The node's lifecycle: Start (and the undoing of a Start that fails), Close, and the node closing itself.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
)

// Start opens the listener and spawns the actor tree, then dials Config.Peers in the background. A ctx that ends
// before the tree is up fails Start (with ctx's error) and undoes it: the node can be started again. A node with
// the identity of one running on the same shared actor system fails with ErrIdentityInUse.
func (n *Node) Start(ctx context.Context) error {
	n.startMu.Lock()
	defer n.startMu.Unlock()
	n.mu.Lock()
	select {
	case <-n.closed:
		n.mu.Unlock()
		return ErrClosed
	default:
	}
	if n.started {
		n.mu.Unlock()
		return ErrAlreadyStarted
	}
	if err := ctx.Err(); err != nil {
		n.mu.Unlock()
		return fmt.Errorf("start node: %w", err)
	}
	gate := make(chan struct{})
	n.starting = gate
	n.mu.Unlock()
	var once sync.Once
	open := func() { // lets the callers waiting for the start (whenStarted) go on
		once.Do(func() {
			n.mu.Lock()
			n.starting = nil
			n.mu.Unlock()
			close(gate)
		})
	}
	defer open()
	return n.start(ctx, open)
}

// start is Start once the node is marked as starting; open lets the callers waiting for it go on.
func (n *Node) start(ctx context.Context, open func()) error {
	if n.cfg.ListenAddr != "" {
		ln, err := n.cfg.Transport.Listen(n.cfg.ListenAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", n.cfg.ListenAddr, err)
		}
		advertise := advertiseAddr(n.cfg.AdvertiseAddr, ln.Addr(), net.InterfaceAddrs)
		n.mu.Lock()
		n.listener, n.advertise = ln, advertise
		n.mu.Unlock()
		if n.cfg.AdvertiseAddr == "" && advertise != ln.Addr().String() {
			n.log.Info().Str("listen", ln.Addr().String()).Str("advertise", advertise).
				Msg("listening on every interface; advertising this address to peers (Config.AdvertiseAddr sets another)")
		}
	}
	n.dialCheck = routing.DialCheck(n.advertise)
	n.record = nil
	if n.advertise != "" && !n.cfg.DisableDiscovery {
		// Signed before the actors start: the routing actor has it before the bootstrapper's first exchange, which
		// carries it to the bootnode (with a DataDir, recordSeq writes a file, and a record given after the start
		// reached the bootnode only with the bootstrapper's next step).
		rec, err := routing.NewRecord(n.identity, n.recordSeq(), []string{n.advertise})
		if err != nil {
			n.log.Warn().Err(err).Str("addr", n.advertise).Msg("cannot sign a node record for the advertised address; peers will not learn it through discovery")
		} else {
			n.record = rec
		}
	}
	n.mu.Lock()
	n.system = n.cfg.ActorSystem
	if n.system == nil {
		n.system, n.ownSystem = NewActorSystem(n.log), true
	}
	n.mu.Unlock()
	ready := make(chan guardianReady, 1)
	routingDone := make(chan struct{})
	// Named after the identity, so that nodes can share an actor system.
	pid, err := n.system.Root.SpawnNamed(n.guardianProps(ready, routingDone), "node-"+n.ID().String())
	if err != nil {
		n.abortStart(nil, open)
		if errors.Is(err, actor.ErrNameExists) {
			return fmt.Errorf("start node %s: %w", n.ID().Short(), ErrIdentityInUse)
		}
		return fmt.Errorf("spawn node guardian: %w", err)
	}
	select {
	case r := <-ready:
		if r.err != nil {
			n.abortStart(pid, open)
			return fmt.Errorf("start node: %w", r.err)
		}
		// Both may have been ready: a Start whose context ended, or during which Close was called, fails,
		// whichever came first.
		if err := ctx.Err(); err != nil {
			n.abortStart(pid, open)
			return fmt.Errorf("start node: %w", err)
		}
		select {
		case <-n.closed:
			n.abortStart(pid, open)
			return ErrClosed
		default:
		}
		n.mu.Lock()
		n.guardian, n.peerMgr, n.protoSup, n.routing, n.routingDone = pid, r.peers, r.protocols, r.routing, routingDone
		n.relay = gossip.NewRelay(n.system.Root, r.relay, r.relayStopped, n.closed, ErrClosed)
		n.started = true
		n.mu.Unlock()
	case <-ctx.Done():
		n.abortStart(pid, open)
		return fmt.Errorf("start node: %w", ctx.Err())
	case <-n.closed:
		n.abortStart(pid, open)
		return ErrClosed
	}
	open()
	n.log.Info().Str("addr", n.addrString()).Msg("node started")
	return nil
}

// recordSeq is the sequence number of the node's record: the clock's, kept above the last one used in
// DataDir/record.seq when there is a DataDir (routing.NextRecordSeq), so that a node whose clock was ahead in its
// last run still signs a record its peers take for newer.
func (n *Node) recordSeq() uint64 {
	if n.cfg.DataDir == "" {
		return uint64(time.Now().UnixNano())
	}
	seq, err := routing.NextRecordSeq(filepath.Join(n.cfg.DataDir, "record.seq"), time.Now())
	if err != nil {
		n.log.Warn().Err(err).Msg("the node record's sequence number is the clock's; if it was ahead in an earlier run, peers may keep the old record")
	}
	return seq
}

// whenStarted waits while a Start is under way (the node's actors call into it as they start), then tells whether
// the node is started.
func (n *Node) whenStarted() bool {
	n.mu.Lock()
	gate := n.starting
	n.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-n.closed:
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.started
}

// abortStart undoes a Start that fails, as Close would: it lets the callers waiting for the start go on (open:
// they find the node not started), stops the actor tree (guardian, nil if not spawned) and waits for it, closes the
// connections accepted meanwhile, and stops the node's goroutines, so that a later Start begins afresh.
func (n *Node) abortStart(guardian *actor.PID, open func()) {
	n.aborting.Store(true)
	defer n.aborting.Store(false)
	open()
	if guardian != nil {
		if err := n.system.Root.StopFuture(guardian).Wait(); err != nil {
			n.log.Warn().Err(err).Msg("stopping the actor tree of a failed start")
		}
	}
	n.accepted.closeAll()
	n.accepted.reopen()
	n.stopDispatchers()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closeListener()
	n.listener, n.advertise = nil, ""
	if n.ownSystem {
		n.system.Shutdown()
		n.system, n.ownSystem = nil, false
	}
}

func (n *Node) closeListener() {
	if n.listener != nil {
		_ = n.listener.Close()
	}
}

// Close stops the actor tree (connections are closed with reason SHUTDOWN after flushing their queues), waits for
// every goroutine of the node to exit, fails pending requests with ErrClosed and closes the channels of Events once
// the shutdown's events are in them. It is idempotent. It must not be
// called from the node's own goroutines (a subscription handler or validator, an event subscriber, a protocol
// actor): Close waits for them to end, so it would wait for itself until protoactor's stop timeouts (10 s for the
// actor tree; an embedder measured 15 s in all) and return before they exit. Call it from another goroutine there (go node.Close()).
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		close(n.closed)
		n.mu.Unlock()
		defer n.closeEventSubs() // once the actors have stopped: the shutdown's events are in the channels
		// A Start under way sees the node closed and undoes itself; Close waits for it.
		n.startMu.Lock()
		defer n.startMu.Unlock()
		n.mu.Lock()
		started, guardian := n.started, n.guardian
		n.mu.Unlock()
		if !started {
			n.closeListener()
			return
		}
		// Not holding n.mu: protocol actors being stopped may still call into the node.
		if err := n.system.Root.StopFuture(guardian).Wait(); err != nil {
			n.log.Warn().Err(err).Msg("stopping the actor tree")
		}
		n.accepted.closeAll()
		n.stopDispatchers()
		if n.ownSystem {
			n.system.Shutdown()
		}
		n.log.Info().Msg("node closed")
	})
	return nil
}

// Done is closed once the node closes: by Close, or by itself when it fails (then Err says why). An application
// that runs a node for its whole life waits on it with its other reasons to stop.
func (n *Node) Done() <-chan struct{} { return n.closed }

// Err tells why the node closed itself: an error wrapping ErrNodeFailed. It is nil while the node runs and after a
// Close the application asked for.
func (n *Node) Err() error {
	if p := n.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records why the node closes itself and closes it, from a goroutine of its own: the caller is one of the
// node's actors, which Close waits for.
func (n *Node) fail(err error) {
	select {
	case <-n.closed:
		return // closing already: an actor stopping now is part of it
	default:
	}
	err = fmt.Errorf("%w: %w", ErrNodeFailed, err)
	if !n.failure.CompareAndSwap(nil, &err) {
		return
	}
	n.log.Error().Err(err).Msg("the node closes itself")
	go n.Close()
}
