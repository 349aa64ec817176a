package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// runOptions are the flags of `node run`.
type runOptions struct {
	listen      string
	key         string
	peers       []string
	network     string
	maxInbound  int
	maxOutbound int
	logLevel    string
	logFormat   string
}

func newRunCmd() *cobra.Command {
	def := actors.DefaultConfig()
	o := runOptions{}
	cmd := &cobra.Command{
		Use:   "run [flags]",
		Short: "Run a node until SIGINT or SIGTERM",
		Long: "run starts a node, prints its address as the first line on stdout (\"listening <id>@host:port\"), " +
			"serves the built-in protocol " + echoProtocol + " (replies to each request with its payload), keeps the " +
			"--peer nodes connected and logs peers coming and going on stderr. SIGINT or SIGTERM close it cleanly.",
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:30700", "host:port to accept connections on (port 0: any free port)")
	f.StringVar(&o.key, "key", "", "identity key file, created if missing (default: a fresh in-memory identity)")
	f.StringArrayVar(&o.peers, "peer", nil, "peer to keep connected, as <id>@host:port (repeatable)")
	f.StringVar(&o.network, "network", def.NetworkID, "network id; peers on another network are refused")
	f.IntVar(&o.maxInbound, "max-inbound", def.MaxInboundPeers, "most connections accepted from other peers")
	f.IntVar(&o.maxOutbound, "max-outbound", def.MaxOutboundPeers, "most connections dialed to other peers")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "console", "log format on stderr: console or json")
	return cmd
}

// startTimeout bounds Node.Start (opening the listener and spawning the actor tree).
const startTimeout = 10 * time.Second

// runNode runs a node until ctx ends, then closes it. The first line on stdout is "listening <id>@host:port";
// logs go to stderr.
func runNode(ctx context.Context, o runOptions, stdout, stderr io.Writer) error {
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	cfg, err := o.config(log)
	if err != nil {
		return err
	}
	if o.key != "" {
		id, created, err := session.LoadOrCreateIdentity(o.key)
		if err != nil {
			return keyFileError(o.key, err)
		}
		if created {
			log.Info().Str("key", o.key).Str("id", id.NodeID().String()).Msg("created a new identity")
		}
		cfg.Identity = id
	} else {
		log.Warn().Msg("no --key given: using a fresh in-memory identity, the NodeID changes on every start")
	}
	peers := cfg.Peers
	cfg.Peers = nil // dialed below, once the event subscription is in place
	node, err := actors.NewNode(cfg)
	if errors.Is(err, actors.ErrInvalidConfig) {
		return &usageError{err}
	} else if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = node.Start(startCtx)
	cancel()
	if err != nil {
		node.Close()
		return err
	}
	var wg sync.WaitGroup
	evl := newEventLogger(log, node)
	unsubscribe := func() {}
	defer func() {
		node.Close() // connections close with reason SHUTDOWN; their events are still logged
		unsubscribe()
		evl.stop()
		wg.Wait()
	}()
	wg.Add(1)
	go func() { defer wg.Done(); evl.run() }()
	unsub, err := node.SubscribeEvents(evl.publish)
	if err != nil {
		return err
	}
	unsubscribe = unsub

	if _, err := node.Register(echoProtocol, echoProps()); err != nil {
		return fmt.Errorf("register %s: %w", echoProtocol, err)
	}
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// keep: the peer manager redials with backoff; this only reports how the first attempt went.
			if err := node.Connect(ctx, p, true); err != nil && ctx.Err() == nil && !errors.Is(err, actors.ErrClosed) {
				log.Warn().Err(err).Str("peer", p.String()).Msg("peer not reachable yet; redialing with backoff")
			}
		}()
	}

	if _, err := fmt.Fprintf(stdout, "listening %s\n", node.Addr()); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info().Msg("shutting down")
	return nil
}

// config turns the flags into a node config.
func (o runOptions) config(log zerolog.Logger) (actors.Config, error) {
	cfg := actors.DefaultConfig()
	if _, _, err := net.SplitHostPort(o.listen); o.listen == "" || err != nil {
		return cfg, usagef("--listen %q: want host:port, e.g. 127.0.0.1:30700 or 0.0.0.0:0", o.listen)
	}
	cfg.ListenAddr = o.listen
	if o.network == "" {
		return cfg, usagef("--network must not be empty")
	}
	cfg.NetworkID = o.network
	if o.maxInbound < 1 || o.maxOutbound < 1 {
		return cfg, usagef("--max-inbound and --max-outbound must be at least 1")
	}
	cfg.MaxInboundPeers, cfg.MaxOutboundPeers = o.maxInbound, o.maxOutbound
	for _, s := range o.peers {
		p, err := session.ParsePeerAddr(s)
		if err != nil {
			return cfg, usagef("--peer: %w", err)
		}
		cfg.Peers = append(cfg.Peers, p)
	}
	cfg.Logger = log
	return cfg, nil
}

// eventLogger logs the node's peer events. The subscription callback runs on an actor's goroutine and must not
// block, so it only queues the event (dropping it when the queue is full); a goroutine of its own writes the logs.
type eventLogger struct {
	log  zerolog.Logger
	node *actors.Node
	ch   chan proto.Message
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	dropped int
}

func newEventLogger(log zerolog.Logger, node *actors.Node) *eventLogger {
	return &eventLogger{log: log, node: node, ch: make(chan proto.Message, 1024), done: make(chan struct{})}
}

func (l *eventLogger) publish(m proto.Message) {
	select {
	case l.ch <- m:
	default:
		l.mu.Lock()
		l.dropped++
		l.mu.Unlock()
	}
}

func (l *eventLogger) stop() { l.once.Do(func() { close(l.done) }) }

func (l *eventLogger) run() {
	for {
		select {
		case m := <-l.ch:
			l.write(m)
		case <-l.done:
			for {
				select {
				case m := <-l.ch:
					l.write(m)
				default:
					return
				}
			}
		}
	}
}

func (l *eventLogger) write(m proto.Message) {
	l.mu.Lock()
	dropped := l.dropped
	l.dropped = 0
	l.mu.Unlock()
	if dropped > 0 {
		l.log.Warn().Int("dropped", dropped).Msg("peer events dropped: the log is behind")
	}
	switch e := m.(type) {
	case *messages.PeerConnected:
		l.log.Info().Str("event", "connected").Str("peer", peerIDString(e.GetPeerId())).
			Str("remote", e.GetRemoteAddr()).Bool("outbound", e.GetOutbound()).Strs("listen", e.GetListenAddrs()).
			Int("peers", len(l.node.Peers())).Msg("peer up")
	case *messages.PeerDisconnected:
		l.log.Info().Str("event", "disconnected").Str("peer", peerIDString(e.GetPeerId())).
			Str("reason", e.GetReason().String()).Str("detail", e.GetDetail()).Bool("outbound", e.GetOutbound()).
			Int("peers", len(l.node.Peers())).Msg("peer down")
	}
}

func peerIDString(b []byte) string {
	id, err := session.NodeIDFromBytes(b)
	if err != nil {
		return fmt.Sprintf("invalid(%x)", b)
	}
	return id.String()
}
