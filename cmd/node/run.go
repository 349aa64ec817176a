package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	listen         string
	advertise      string
	key            string
	dataDir        string
	peers          []string
	bootnodes      []string
	targetOutbound int
	network        string
	maxInbound     int
	maxOutbound    int
	rekeyInterval  int
	logLevel       string
	logFormat      string
	topics         []string
	api            string
	apiRemote      bool
	metrics        string
}

// defaultAPIAddr is where `node run` serves the admin API and where the CLI clients look for it by default.
const defaultAPIAddr = "127.0.0.1:31700"

// dataDirKeyFile is the identity key file inside --data-dir, used when --key is not given; dataDirLockFile is the
// file a running node holds locked (lockDataDir).
const (
	dataDirKeyFile  = "node.key"
	dataDirLockFile = "LOCK"
)

func newRunCmd() *cobra.Command { return newRunCmdWith(&runOptions{}) }

// newRunCmdWith builds `node run` with its flags bound to o.
func newRunCmdWith(o *runOptions) *cobra.Command {
	def := actors.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "run [flags]",
		Short: "Run a node until SIGINT or SIGTERM",
		Long: "run starts a node, prints its address as the first line on stdout (\"listening <id>@host:port\"), " +
			"serves the built-in protocol " + echoProtocol + " (replies to each request with its payload), keeps the " +
			"--peer nodes connected and logs peers coming and going on stderr. SIGINT or SIGTERM close it cleanly.\n\n" +
			"Discovery: the node joins the network through the --bootnode nodes (and the peers it stored before), " +
			"finds more peers with Kademlia lookups and keeps --target-outbound connections to them. With --data-dir " +
			"the node keeps its state there: the peer store DIR/peers.pb (saved periodically and at shutdown, loaded " +
			"at the next start), the last sequence number of its record DIR/record.seq (so that a record signed with a " +
			"clock that was ahead is still outdated by the next) and, unless --key is given, its identity DIR/" +
			dataDirKeyFile + " (created on the first run), so the NodeID stays the same across restarts.\n\n" +
			"When --listen is a loopback address, loopback peers are exempt from the per-IP inbound throttle and from " +
			"the routing table's per-subnet limits, so that several local nodes on 127.0.0.1 can form a network.\n\n" +
			"Every flag can also be set by the environment variable ACTORMESH_<FLAG> (ACTORMESH_DATA_DIR for " +
			"--data-dir; lists comma-separated) or by a TOML --config file whose keys are the flag names; the command " +
			"line wins over the environment, which wins over the file.",
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return applyFlagSources(cmd, "ACTORMESH", "config")
		},
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			return runNode(cmd.Context(), *o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:30700", "host:port to accept connections on (port 0: any free port); "+
		"on a loopback address, loopback peers are exempt from the per-IP limits")
	f.StringVar(&o.advertise, "advertise", "", "host:port peers are told to dial (default: the --listen address; "+
		"on 0.0.0.0 or ::, the host's first global or private interface address): set it behind NAT or port forwarding")
	f.StringVar(&o.key, "key", "", "identity key file, created if missing (default: DIR/"+dataDirKeyFile+
		" with --data-dir, else a fresh in-memory identity)")
	f.StringVar(&o.dataDir, "data-dir", "", "directory of the node's state (peer store peers.pb, record sequence record.seq, identity "+
		dataDirKeyFile+" unless --key is given), created if missing (default: none kept)")
	f.StringArrayVar(&o.peers, "peer", nil, "peer to keep connected, as <id>@host:port (repeatable)")
	f.StringArrayVar(&o.bootnodes, "bootnode", nil, "node to join the network through, as <id>@host:port (repeatable)")
	f.IntVar(&o.targetOutbound, "target-outbound", def.Bootstrap.TargetOutbound,
		"outbound connections the node keeps to peers found by discovery")
	f.StringVar(&o.network, "network", def.NetworkID, "network id; peers on another network are refused")
	f.IntVar(&o.maxInbound, "max-inbound", def.MaxInboundPeers, "most connections accepted from other peers")
	f.IntVar(&o.maxOutbound, "max-outbound", def.MaxOutboundPeers, "most connections dialed to other peers")
	f.IntVar(&o.rekeyInterval, "rekey-interval", def.RekeyInterval, fmt.Sprintf("transport frames each direction of "+
		"a connection seals under one key before it rekeys, the smaller of the two peers' values (0: the default, %d; "+
		"else %d to %d)", session.DefaultRekeyInterval, session.MinRekeyInterval, session.MaxRekeyInterval))
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.logFormat, "log-format", "console", "log format on stderr: console or json")
	f.StringArrayVar(&o.topics, "topic", nil, "topic to subscribe to at start (repeatable); its messages are logged")
	f.StringVar(&o.api, "api", defaultAPIAddr, "host:port of the admin HTTP/JSON API (a bare :port means 127.0.0.1:port; "+
		"off: no API); a non-loopback host needs --api-remote")
	f.BoolVar(&o.apiRemote, "api-remote", false, "allow --api on a non-loopback address: anyone who reaches it can "+
		"publish and send as this node, so protect it (firewall, reverse proxy with authentication)")
	f.StringVar(&o.metrics, "metrics", "", "host:port of the Prometheus endpoint /metrics (a bare :port means "+
		"127.0.0.1:port; default: none)")
	f.String("config", "", "TOML file of flag values, keys are flag names (env ACTORMESH_CONFIG)")
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
	// The node's own checks too, before identity creates the data directory, its lock and a key file: a refused
	// command line leaves nothing behind. Validate wants no identity (NewNode makes one when there is none).
	if err := cfg.Validate(); err != nil {
		return &usageError{err}
	}
	id, release, err := o.identity(log)
	if err != nil {
		return err
	}
	defer release()
	cfg.Identity = id
	peers := cfg.Peers
	cfg.Peers = nil // dialed below, once the event subscription is in place
	node, err := actors.NewNode(cfg)
	if errors.Is(err, actors.ErrInvalidConfig) {
		return &usageError{err}
	} else if err != nil {
		return err
	}
	// A shared configuration lists the node among its own --peer entries, as it does its --bootnode ones, which the
	// node leaves out itself.
	peers = slices.DeleteFunc(peers, func(p session.PeerAddr) bool { return p.ID == node.ID() })
	lns, err := listenHTTP(o)
	if err != nil {
		return err
	}
	served := false
	defer func() {
		if !served {
			lns.close()
		}
	}()
	// Subscribed before Start: the node dials its peer store's peers and the bootnodes as it starts, and a
	// connection that came up before the subscription was never logged ("peer up" missing in 2 runs of 15 of a
	// loaded test).
	events, err := subscribeEventLog(node, eventLogBuffer)
	if err != nil {
		node.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); logEvents(log, node, events) }()
	defer func() {
		node.Close() // connections close with reason SHUTDOWN; their events are still logged, then the channel closes
		wg.Wait()
	}()
	startCtx, cancel := context.WithTimeout(ctx, startTimeout)
	err = node.Start(startCtx)
	cancel()
	if err != nil {
		return interrupted(ctx, log, err)
	}

	if _, err := node.Register(echoProtocol, echoProps()); err != nil {
		return fmt.Errorf("register %s: %w", echoProtocol, err)
	}
	if err := subscribeTopics(ctx, node, o.topics, log); err != nil {
		return interrupted(ctx, log, err)
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
	servers := startHTTP(o, lns, node, log, stdout)
	served = true
	defer servers.close() // before the node closes: API streams hold subscriptions
	select {
	case <-ctx.Done():
		log.Info().Msg("shutting down")
		return nil
	case <-node.Done(): // it failed and closed itself
		return fmt.Errorf("node stopped: %w", node.Err())
	}
}

// interrupted returns err, the failure of a startup step, unless ctx ended (a SIGINT or SIGTERM during the
// startup, which the step may have failed of): then the run ends as a signal after the startup ends it, logged,
// with exit code 0, and the deferred closes free what the startup took (the data directory's lock, the ports).
func interrupted(ctx context.Context, log zerolog.Logger, err error) error {
	if ctx.Err() == nil {
		return err
	}
	log.Info().Err(err).Msg("shutting down: interrupted while starting")
	return nil
}

// config turns the flags into a node config.
func (o runOptions) config(log zerolog.Logger) (actors.Config, error) {
	cfg := actors.DefaultConfig()
	if _, port, err := net.SplitHostPort(o.listen); o.listen == "" || err != nil || !validPort(port) {
		return cfg, usagef("--listen %q: want host:port, e.g. 127.0.0.1:30700 or 0.0.0.0:0", o.listen)
	}
	cfg.ListenAddr = o.listen
	if o.advertise != "" {
		if _, port, err := net.SplitHostPort(o.advertise); err != nil || !validPort(port) || port == "0" {
			return cfg, usagef("--advertise %q: want host:port, e.g. 203.0.113.7:30700", o.advertise)
		}
		cfg.AdvertiseAddr = o.advertise
	}
	if _, err := httpListenAddr("api", o.api, o.apiRemote); err != nil {
		return cfg, err
	}
	if _, err := httpListenAddr("metrics", o.metrics, true); err != nil {
		return cfg, err
	}
	for _, t := range o.topics {
		if strings.TrimSpace(t) == "" {
			return cfg, usagef("--topic must not be empty")
		}
		if err := cfg.Gossip.Router.CheckTopic(t); err != nil {
			return cfg, usagef("--topic: %w", err)
		}
	}
	if n, most := len(distinct(o.topics)), cfg.Gossip.Router.MaxPeerTopics; n > most {
		// The node's Subscribe refuses the topics past it (gossip.ErrLimit): refused here, before the node starts.
		return cfg, usagef("--topic: %d topics, a node joins at most %d", n, most)
	}
	if o.network == "" {
		return cfg, usagef("--network must not be empty")
	}
	cfg.NetworkID = o.network
	if o.maxInbound < 1 || o.maxOutbound < 1 {
		return cfg, usagef("--max-inbound and --max-outbound must be at least 1")
	}
	cfg.MaxInboundPeers, cfg.MaxOutboundPeers = o.maxInbound, o.maxOutbound
	if v := o.rekeyInterval; v != 0 && (v < session.MinRekeyInterval || v > session.MaxRekeyInterval) {
		return cfg, usagef("--rekey-interval %d: want 0 (the default, %d frames) or %d to %d frames", v,
			session.DefaultRekeyInterval, session.MinRekeyInterval, session.MaxRekeyInterval)
	}
	cfg.RekeyInterval = o.rekeyInterval
	for _, s := range o.peers {
		p, err := session.ParsePeerAddr(s)
		if err != nil {
			return cfg, usagef("--peer: %w", err)
		}
		if slices.ContainsFunc(cfg.Peers, func(q session.PeerAddr) bool { return q.ID == p.ID }) {
			return cfg, usagef("--peer: %s is given twice", p.ID.Short())
		}
		cfg.Peers = append(cfg.Peers, p)
	}
	for _, s := range o.bootnodes {
		p, err := session.ParsePeerAddr(s)
		if err != nil {
			return cfg, usagef("--bootnode: %w", err)
		}
		cfg.Bootstrap.Bootnodes = append(cfg.Bootstrap.Bootnodes, p)
	}
	if o.targetOutbound < 0 {
		return cfg, usagef("--target-outbound must not be negative, got %d", o.targetOutbound)
	}
	cfg.Bootstrap.TargetOutbound = o.targetOutbound
	cfg.DataDir = o.dataDir
	if isLoopbackHost(o.listen) {
		// Local networks put every node on 127.0.0.1: one IP, one /24.
		cfg.ExemptLoopbackThrottle = true
		cfg.Routing.Table.ExemptLoopback = true
	}
	cfg.Logger = log
	return cfg, nil
}

// identity returns the node's identity: the key file of --key, else DIR/node.key of --data-dir (either created if
// missing), else nil (the node generates a fresh one; a warning says so). It creates --data-dir (mode 0700) and
// holds its lock (DIR/LOCK) and the key file's until release: a second node on either fails to start.
func (o runOptions) identity(log zerolog.Logger) (id *session.Identity, release func(), err error) {
	var held []func()
	releaseAll := func() {
		for _, r := range held {
			r()
		}
	}
	defer func() {
		if err != nil {
			releaseAll()
		}
	}()
	if o.dataDir != "" {
		if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("create data directory: %w", err)
		}
		r, err := lockDataDir(o.dataDir)
		if err != nil {
			return nil, nil, err
		}
		held = append(held, r)
	}
	path := o.key
	if path == "" && o.dataDir != "" {
		path = filepath.Join(o.dataDir, dataDirKeyFile)
	}
	if path == "" {
		log.Warn().Msg("no --key or --data-dir given: using a fresh in-memory identity, the NodeID changes on every start")
		return nil, releaseAll, nil
	}
	id, created, r, err := lockedKey(path, nil)
	if err != nil {
		return nil, nil, err
	}
	held = append(held, r)
	if created {
		log.Info().Str("key", path).Str("id", id.NodeID().String()).Msg("created a new identity")
	}
	return id, releaseAll, nil
}

// lockedKey loads the identity at path, creating it if need be, and takes the key file's lock (lockKeyFile) until
// release. The key is read again once the file is locked: a keygen --force between the first read and the lock
// (it takes the lock to replace a key, so that it never replaces a running node's) replaced the file, and the node
// ran as the old identity holding the new key's lock, to come back as another node at its next start (until stop
// 58). between, if set, runs between the two (tests).
func lockedKey(path string, between func()) (id *session.Identity, created bool, release func(), err error) {
	id, created, err = session.LoadOrCreateIdentity(path)
	if err != nil {
		return nil, false, nil, keyFileError(path, err)
	}
	if between != nil {
		between()
	}
	release, err = lockKeyFile(path)
	if err != nil {
		return nil, false, nil, err
	}
	locked, err := session.LoadIdentity(path)
	if err != nil {
		release()
		return nil, false, nil, keyFileError(path, err)
	}
	if locked.NodeID() != id.NodeID() {
		id, created = locked, false // replaced meanwhile: the locked file's key is the node's
	}
	return id, created, release, nil
}

// validPort tells whether port is a port number, 0 to 65535, or a service name net.Listen knows.
func validPort(port string) bool {
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		return n <= 65535
	}
	_, err := net.LookupPort("tcp", port)
	return err == nil
}

// isLoopbackHost tells whether the host of a host:port is a loopback address (127.0.0.0/8, ::1 or localhost).
func isLoopbackHost(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// eventLogBuffer is how many peer events the log may be behind before it drops some (and says how many).
const eventLogBuffer = 1024

// dropWarnInterval is the least time between two warnings of peer events the log dropped: a log that stays behind
// warns once an interval with the count since the last warning, not once for every event it reads.
const dropWarnInterval = 10 * time.Second

// subscribeEventLog subscribes the event log (logEvents) to node's events, size of them held until read. The
// subscription does not warn of the events it drops: logEvents does, with their count.
func subscribeEventLog(node *actors.Node, size int) (*actors.EventSubscription, error) {
	events, err := node.Events(size)
	if err != nil {
		return nil, err
	}
	events.QuietDrops()
	return events, nil
}

// logEvents logs the node's peer events until the subscription's channel closes (at the node's Close). The events
// dropped because the log was behind make one warning with their count (subscribeEventLog turns the subscription's
// own off: it could not say how many), at most one each dropWarnInterval, and a last one at the end for any left.
func logEvents(log zerolog.Logger, node *actors.Node, events *actors.EventSubscription) {
	warn := dropWarning{every: dropWarnInterval}
	report := func(now time.Time, final bool) {
		if n, ok := warn.due(events.Dropped(), now, final); ok {
			log.Warn().Uint64("dropped", n).Int("buffer", cap(events.C)).Msg("peer events dropped: the log is behind")
		}
	}
	tick := time.NewTicker(dropWarnInterval)
	defer tick.Stop()
	for {
		var m proto.Message
		select {
		case now := <-tick.C:
			report(now, false)
			continue
		case ev, ok := <-events.C:
			if !ok {
				report(time.Now(), true)
				return
			}
			m = ev
		}
		report(time.Now(), false)
		switch e := m.(type) {
		case *messages.PeerConnected:
			log.Info().Str("event", "connected").Str("peer", peerIDString(e.GetPeerId())).
				Str("remote", e.GetRemoteAddr()).Bool("outbound", e.GetOutbound()).Strs("listen", e.GetListenAddrs()).
				Int("peers", len(node.Peers())).Msg("peer up")
		case *messages.PeerDisconnected:
			log.Info().Str("event", "disconnected").Str("peer", peerIDString(e.GetPeerId())).
				Str("reason", e.GetReason().String()).Str("detail", e.GetDetail()).Bool("outbound", e.GetOutbound()).
				Bool("still_connected", e.GetStillConnected()).Int("peers", len(node.Peers())).Msg("peer down")
		}
	}
}

// dropWarning tells logEvents when to warn of dropped events. It has no clock of its own.
type dropWarning struct {
	every  time.Duration
	warned uint64    // the subscription's Dropped count at the last warning
	last   time.Time // the last warning's time
}

// due returns how many events were dropped since the last warning, given the subscription's count dropped, and
// whether to warn of them at now: some were, and the last warning is every old or more, or final (the log ends).
func (w *dropWarning) due(dropped uint64, now time.Time, final bool) (uint64, bool) {
	if dropped <= w.warned || !final && !w.last.IsZero() && now.Sub(w.last) < w.every {
		return 0, false
	}
	n := dropped - w.warned
	w.warned, w.last = dropped, now
	return n, true
}

func peerIDString(b []byte) string {
	id, err := session.NodeIDFromBytes(b)
	if err != nil {
		return fmt.Sprintf("invalid(%x)", b)
	}
	return id.String()
}

// distinct returns the distinct strings of list.
func distinct(list []string) map[string]struct{} {
	set := make(map[string]struct{}, len(list))
	for _, s := range list {
		set[s] = struct{}{}
	}
	return set
}
