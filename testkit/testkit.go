// Package testkit runs in-process networks of real actormesh nodes for tests, benchmarks and simulations: N nodes
// listening on 127.0.0.1, connected in a chosen topology, with polling helpers that wait for conditions under a
// deadline and fault injection on the transport.
package testkit

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/session"
	"github.com/actormesh/actormesh/testkit/poll"
)

// Option adjusts a Network before its nodes start.
type Option func(*options)

type options struct {
	configure func(i int, cfg *actors.Config)
	started   func(i int, n *actors.Node)
	logLevel  zerolog.Level
	logger    zerolog.Logger
	bootnode  bool
}

// WithLogger sends the nodes' logs to l (each tagged with its node index), at the level of WithLogLevel.
func WithLogger(l zerolog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// WithBootnode makes node 0 the bootnode of every other node (Config.Bootstrap.Bootnodes), so the network forms
// through the real discovery path instead of explicit Connect calls.
func WithBootnode() Option {
	return func(o *options) { o.bootnode = true }
}

// WithConfig lets the caller change node i's config before it is created. Several apply in their order.
func WithConfig(f func(i int, cfg *actors.Config)) Option {
	return func(o *options) {
		before := o.configure
		o.configure = func(i int, cfg *actors.Config) {
			if before != nil {
				before(i, cfg)
			}
			f(i, cfg)
		}
	}
}

// WithStarted calls f with each node once it has started, before the next one is configured. Several apply in
// their order.
func WithStarted(f func(i int, n *actors.Node)) Option {
	return func(o *options) {
		before := o.started
		o.started = func(i int, n *actors.Node) {
			if before != nil {
				before(i, n)
			}
			f(i, n)
		}
	}
}

// WithLogLevel sets the level of the nodes' logs, written to the test log (default warn).
func WithLogLevel(l zerolog.Level) Option {
	return func(o *options) { o.logLevel = l }
}

// Network is a set of started nodes. Close (registered with t.Cleanup) stops them all.
type Network struct {
	t     testing.TB
	Nodes []*actors.Node
	cfgs  []actors.Config // each node's config as started, to restart it
}

// NewNetwork starts n nodes on 127.0.0.1 with free ports; they are not connected yet. The test fails if any node
// cannot start.
func NewNetwork(t testing.TB, n int, opts ...Option) *Network {
	t.Helper()
	nw := &Network{t: t}
	t.Cleanup(nw.Close)
	opts = append([]Option{WithLogger(zerolog.New(zerolog.NewTestWriter(t)))}, opts...)
	record := func(o *options) {
		inner := o.configure
		o.configure = func(i int, cfg *actors.Config) {
			if inner != nil {
				inner(i, cfg)
			}
			nw.cfgs = append(nw.cfgs, *cfg)
		}
	}
	nodes, err := StartNodes(context.Background(), n, append(opts, record)...)
	nw.Nodes = nodes
	if err != nil {
		t.Fatal(err)
	}
	return nw
}

// Kill stops node i as a crash would: over the in-memory transport its connections are reset at once (no
// goodbye), over TCP the node is closed. The node stays in Nodes, closed, until Restart.
func (nw *Network) Kill(i int) {
	nw.t.Helper()
	if mt, ok := nw.cfgs[i].Transport.(*MemTransport); ok {
		mt.Kill()
	}
	_ = nw.Nodes[i].Close()
}

// Restart starts a new node in place of node i (after Kill), with the same identity, config and listen address,
// so that the peers that keep it connected redial it.
func (nw *Network) Restart(i int) {
	nw.t.Helper()
	cfg := nw.cfgs[i]
	cfg.ListenAddr = nw.Nodes[i].Addr().Addr
	node, err := actors.NewNode(cfg)
	if err != nil {
		nw.t.Fatalf("testkit: restart node %d: %v", i, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		nw.t.Fatalf("testkit: restart node %d: %v", i, err)
	}
	nw.Nodes[i] = node
}

// StartNodes starts n nodes on 127.0.0.1 with free ports, node i configured after node i-1 has started. On error,
// the nodes started so far are returned (the caller closes them) with the error. Logs are discarded unless
// WithLogger is given.
func StartNodes(ctx context.Context, n int, opts ...Option) ([]*actors.Node, error) {
	o := options{logLevel: zerolog.WarnLevel, logger: zerolog.Nop()}
	for _, opt := range opts {
		opt(&o)
	}
	var nodes []*actors.Node
	for i := 0; i < n; i++ {
		cfg := actors.DefaultConfig()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.Routing.Table.ExemptLoopback = true // every test node shares 127.0.0.0/24
		cfg.ExemptLoopbackThrottle = true       // every test node connects from 127.0.0.1
		cfg.Logger = o.logger.Level(o.logLevel).With().Int("i", i).Logger()
		if o.bootnode && i > 0 {
			cfg.Bootstrap.Bootnodes = []session.PeerAddr{nodes[0].Addr()}
		}
		id, err := session.GenerateIdentity() // set here, so that a restarted node keeps it
		if err != nil {
			return nodes, err
		}
		cfg.Identity = id
		if o.configure != nil {
			o.configure(i, &cfg)
		}
		node, err := actors.NewNode(cfg)
		if err != nil {
			return nodes, fmt.Errorf("testkit: node %d: %w", i, err)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute) // long: a node starting among hundreds may wait for CPU
		err = node.Start(sctx)
		cancel()
		if err != nil {
			_ = node.Close()
			return nodes, fmt.Errorf("testkit: start node %d: %w", i, err)
		}
		nodes = append(nodes, node)
		if o.started != nil {
			o.started(i, node)
		}
	}
	return nodes, nil
}

// Connect makes node i dial node j (kept connected, redialed on failure) and waits until both see the connection.
func (nw *Network) Connect(i, j int) {
	nw.t.Helper()
	a, b := nw.Nodes[i], nw.Nodes[j]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.Addr(), true); err != nil {
		nw.t.Fatalf("testkit: connect %d -> %d: %v", i, j, err)
	}
	WaitFor(nw.t, 10*time.Second, func() bool { return a.Connected(b.ID()) && b.Connected(a.ID()) },
		"nodes %d and %d connected", i, j)
}

// ConnectAll connects every edge of a topology.
func (nw *Network) ConnectAll(edges [][2]int) {
	nw.t.Helper()
	for _, e := range edges {
		nw.Connect(e[0], e[1])
	}
}

// Close closes every node; it is safe to call more than once.
func (nw *Network) Close() {
	for _, n := range nw.Nodes {
		_ = n.Close()
	}
}

// Line returns the edges 0-1, 1-2, ..., (n-2)-(n-1).
func Line(n int) [][2]int {
	var e [][2]int
	for i := 0; i+1 < n; i++ {
		e = append(e, [2]int{i, i + 1})
	}
	return e
}

// Ring is Line plus the edge closing the circle.
func Ring(n int) [][2]int {
	e := Line(n)
	if n > 2 {
		e = append(e, [2]int{n - 1, 0})
	}
	return e
}

// Star connects every node to node 0.
func Star(n int) [][2]int {
	var e [][2]int
	for i := 1; i < n; i++ {
		e = append(e, [2]int{i, 0})
	}
	return e
}

// Full connects every pair once.
func Full(n int) [][2]int {
	var e [][2]int
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			e = append(e, [2]int{i, j})
		}
	}
	return e
}

// WaitFor polls cond every few milliseconds until it holds, failing the test with the formatted description when
// timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("testkit: waited %v for %s", timeout, fmt.Sprintf(format, args...))
	}
}

// Poll polls cond until it holds (nil) or timeout or ctx ends (an error): poll.Wait.
func Poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	return poll.Wait(ctx, timeout, cond)
}

// FreeAddr returns a loopback host:port on which nothing listened a moment ago, for a node that must come back at
// the same address.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// RegisterStalled registers on n, for protocol, an actor that takes each message and does not finish with it until
// the test ends: a stalled application, whose peers' messages wait in the node's flow control and whose requests
// get no answer. Call it after the network is made, so that the actor is released before the nodes close.
func RegisterStalled(t testing.TB, n *actors.Node, protocol string) {
	t.Helper()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	if _, err := n.Register(protocol, actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actors.Inbound); ok {
			<-release
		}
	})); err != nil {
		t.Fatalf("register %s: %v", protocol, err)
	}
}
