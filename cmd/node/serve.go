package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/actors/metrics"
	"github.com/actormesh/actormesh/gossip"
)

// httpShutdownTimeout bounds the wait for HTTP requests in progress when the node stops.
const httpShutdownTimeout = 3 * time.Second

// httpListenAddr checks the host:port of --api or --metrics (flag names it): "" or "off" means none, a bare
// ":port" listens on 127.0.0.1, and a host that is not loopback needs allowRemote.
func httpListenAddr(flag, value string, allowRemote bool) (string, error) {
	if value == "" || strings.EqualFold(value, "off") {
		return "", nil
	}
	host, port, err := net.SplitHostPort(value)
	if err != nil || !validPort(port) {
		return "", usagef("--%s %q: want host:port, e.g. 127.0.0.1:31700, or off", flag, value)
	}
	if host == "" || strings.EqualFold(host, "localhost") {
		host = "127.0.0.1" // localhost is a name, which resolving could bind elsewhere
	}
	addr := net.JoinHostPort(host, port)
	if !allowRemote && !isLoopbackHost(addr) {
		return "", usagef("--%s %q is not a loopback address: anyone who reaches it could use it; add --%s-remote "+
			"to allow it", flag, value, flag)
	}
	return addr, nil
}

// httpServers are the node's HTTP endpoints (admin API, metrics), each on a listener of its own. Their goroutines
// are owned here and stopped by close.
type httpServers struct {
	log     zerolog.Logger
	api     *adminapi.API
	servers []*http.Server
	wg      sync.WaitGroup
}

// metricsWriteTimeout bounds writing a metrics reply: a scraper that stops reading is dropped after it.
const metricsWriteTimeout = 30 * time.Second

// httpListeners are the listeners of the node's HTTP endpoints, bound before the node starts: a busy port is
// reported before the node announces itself (it printed "listening", then failed).
type httpListeners struct{ api, metrics net.Listener }

// listenHTTP binds the admin API's and the metrics endpoint's listeners the options ask for.
func listenHTTP(o runOptions) (*httpListeners, error) {
	var l httpListeners
	apiAddr, err := httpListenAddr("api", o.api, o.apiRemote)
	if err != nil {
		return nil, err
	}
	metricsAddr, err := httpListenAddr("metrics", o.metrics, true)
	if err != nil {
		return nil, err
	}
	if apiAddr != "" {
		if l.api, err = net.Listen("tcp", apiAddr); err != nil {
			return nil, fmt.Errorf("admin API: %w (choose another address with --api, or --api off)", err)
		}
	}
	if metricsAddr != "" {
		if l.metrics, err = net.Listen("tcp", metricsAddr); err != nil {
			l.close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return &l, nil
}

// close closes the listeners not served yet.
func (l *httpListeners) close() {
	for _, ln := range []net.Listener{l.api, l.metrics} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}

// serve serves h on ln in a goroutine. writeTimeout bounds writing each reply (0: h bounds its own).
func (s *httpServers) serve(name string, ln net.Listener, h http.Handler, writeTimeout time.Duration) {
	// ReadTimeout bounds reading a whole request, its body included (a trickled body held a handler). The admin
	// API bounds its own writes (adminapi.Config.WriteTimeout): a server's WriteTimeout would end its streams.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: writeTimeout, IdleTimeout: time.Minute}
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("server", name).Msg("HTTP server stopped")
		}
	}()
}

// close ends the API's streams, then shuts the servers down, giving requests in progress httpShutdownTimeout.
func (s *httpServers) close() {
	if s.api != nil {
		s.api.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
	}
	s.wg.Wait()
}

// startHTTP serves the admin API and the metrics endpoint on the listeners of listenHTTP and prints their URLs on
// stdout.
func startHTTP(o runOptions, lns *httpListeners, node *actors.Node, log zerolog.Logger, stdout io.Writer) *httpServers {
	s := &httpServers{log: log}
	if lns.api != nil {
		s.api = adminapi.New(node, adminapi.Config{Logger: log.With().Str("component", "api").Logger(), Remote: o.apiRemote})
		s.serve("admin API", lns.api, s.api, 0)
		fmt.Fprintf(stdout, "api http://%s\n", lns.api.Addr())
		log.Info().Str("addr", lns.api.Addr().String()).Msg("admin API listening")
	}
	if lns.metrics != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", metrics.Handler(node))
		s.serve("metrics", lns.metrics, mux, metricsWriteTimeout)
		fmt.Fprintf(stdout, "metrics http://%s/metrics\n", lns.metrics.Addr())
		log.Info().Str("addr", lns.metrics.Addr().String()).Msg("metrics endpoint listening")
	}
	return s
}

// subscribeTopics joins the --topic topics; each message received is logged. The subscriptions end when the
// node closes.
func subscribeTopics(ctx context.Context, node *actors.Node, topics []string, log zerolog.Logger) error {
	for _, t := range topics {
		_, err := node.Subscribe(ctx, t, func(d *gossip.Delivery) {
			if d.Local {
				return
			}
			ev := log.Info().Str("topic", d.Topic).Str("id", d.ID.String()).Str("origin", d.Origin.Short()).
				Uint32("hops", d.Hops).Dur("delay", d.Delay)
			if p := deliveryText(d); p != "" {
				ev = ev.Str("data", p)
			}
			ev.Msg("gossip message")
		})
		if err != nil {
			return fmt.Errorf("subscribe to --topic %q: %w", t, err)
		}
		log.Info().Str("topic", t).Msg("subscribed")
	}
	return nil
}

// deliveryText is a short printable form of a delivered payload for the log (at most 200 bytes).
func deliveryText(d *gossip.Delivery) string {
	s := payloadText(adminapi.PayloadOf(d.Payload, d.Err))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
