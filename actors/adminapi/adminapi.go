// Package adminapi is the HTTP/JSON admin API of a node: self info and status, peers, routing table, topics,
// publishing, direct messages, and a server-sent-events stream of a topic's messages. docs/OPERATOR.md documents
// every endpoint; `node run --api` serves it and the node CLI (peers, status, publish, subscribe, send) is its
// client.
//
// Payloads travel as google.protobuf.BytesValue: the API takes text ("data") or base64 ("data_base64") and
// renders received messages the same way (text when the bytes are valid UTF-8). Other message types are shown by
// type name with their protojson form.
package adminapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
	"github.com/actormesh/actormesh/routing"
	"github.com/actormesh/actormesh/session"
)

// Config configures the API.
type Config struct {
	// Logger receives a line per failed request (4xx at debug, 5xx at warn) and per stream.
	Logger zerolog.Logger
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// StreamBuffer bounds the messages queued for one slow stream client, and StreamBufferBytes their payload
	// bytes; beyond either they are dropped and the client is told how many. Defaults 256 and 16 MiB; StreamBuffer
	// is at most MaxStreamBuffer (each stream's queue is made at that size).
	StreamBuffer      int
	StreamBufferBytes int
	// StreamKeepalive is the interval of SSE comment lines that keep idle streams open through proxies.
	// Default 15 s.
	StreamKeepalive time.Duration
	// WriteTimeout bounds writing a reply, and each write to a stream: a client that stops reading is dropped
	// after it rather than holding a handler (and the node's shutdown) until it reads. Close interrupts a
	// stream's write in progress. Default 30 s. Serve the API from an http.Server without a WriteTimeout of its
	// own, which would end every stream after it.
	WriteTimeout time.Duration
	// MaxStreams bounds the streams open at once, each a subscription with its own buffer (StreamBufferBytes);
	// one more gets 503. Default 64.
	MaxStreams int
	// Remote is set when the API may be reached from other hosts (node run --api-remote). Otherwise only requests
	// whose Host is a loopback IP literal or localhost are served: a web page's host name that resolves to
	// 127.0.0.1 (DNS rebinding) gets 403.
	Remote bool
	// RequestTimeout bounds the node operations of one request (lookups, dials, replies) when the client's
	// timeout_ms does not. Default 10 s.
	RequestTimeout time.Duration
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Logger:            zerolog.Nop(),
		MaxBodyBytes:      1 << 20,
		StreamBuffer:      256,
		StreamBufferBytes: 16 << 20,
		StreamKeepalive:   15 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxStreams:        64,
		RequestTimeout:    10 * time.Second,
	}
}

// API serves the admin endpoints of one node. Close ends the open streams.
type API struct {
	node    *actors.Node
	cfg     Config
	mux     *http.ServeMux
	started time.Time

	ctx    context.Context // ends the streams at Close
	cancel context.CancelFunc
	// mu guards closed, streams (the streams open) and the streams' wg.Add: no stream starts once Close has begun
	// to wait.
	mu      sync.Mutex
	closed  bool
	streams int
	wg      sync.WaitGroup
}

// minStreamKeepalive is the shortest Config.StreamKeepalive: a nanosecond wrote comment lines back to back.
const minStreamKeepalive = 10 * time.Millisecond

// MaxStreamBuffer bounds Config.StreamBuffer: each stream's queue is a channel of that size, made when the stream
// opens, and a huge one (1<<40) ended the process out of memory at the first stream.
const MaxStreamBuffer = 1 << 16

// New returns the API of node; zero fields of cfg take their defaults.
func New(node *actors.Node, cfg Config) *API {
	def := DefaultConfig()
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = def.MaxBodyBytes
	}
	if cfg.StreamBuffer <= 0 {
		cfg.StreamBuffer = def.StreamBuffer
	}
	cfg.StreamBuffer = min(cfg.StreamBuffer, MaxStreamBuffer)
	if cfg.StreamBufferBytes <= 0 {
		cfg.StreamBufferBytes = def.StreamBufferBytes
	}
	if cfg.StreamKeepalive <= 0 {
		cfg.StreamKeepalive = def.StreamKeepalive
	}
	cfg.StreamKeepalive = max(cfg.StreamKeepalive, minStreamKeepalive)
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = def.RequestTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = def.WriteTimeout
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = def.MaxStreams
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &API{node: node, cfg: cfg, mux: http.NewServeMux(), started: time.Now(), ctx: ctx, cancel: cancel}
	a.mux.HandleFunc("GET /v1/self", a.self)
	a.mux.HandleFunc("GET /v1/status", a.status)
	a.mux.HandleFunc("GET /v1/peers", a.peers)
	a.mux.HandleFunc("POST /v1/peers/{id}/messages", a.send)
	a.mux.HandleFunc("GET /v1/routing", a.routing)
	a.mux.HandleFunc("GET /v1/topics", a.topics)
	a.mux.HandleFunc("GET /v1/topics/{topic}", a.topic)
	a.mux.HandleFunc("GET /v1/topics/{topic}/registered", a.registered)
	a.mux.HandleFunc("POST /v1/topics/{topic}/messages", a.publish)
	a.mux.HandleFunc("GET /v1/topics/{topic}/messages", a.stream)
	return a
}

// ServeHTTP implements http.Handler. Unknown paths get 404 and known paths with another method 405, both with a
// JSON error; paths the mux would clean (a segment that is empty, . or ..) get 400. Requests a web browser made for
// another site (Sec-Fetch-Site cross-site or same-site, or an Origin that is not this host), and unless
// Config.Remote requests whose Host is not a loopback address, get 403: a web page the operator visits must not
// publish, send or read through the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A reply's write may block on a client that does not read it: bound it (streams set it again per write).
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(a.cfg.WriteTimeout)); err != nil &&
		!errors.Is(err, http.ErrNotSupported) {
		a.cfg.Logger.Debug().Err(err).Msg("admin API: setting the write deadline failed")
	}
	if err := a.checkOrigin(r); err != nil {
		a.fail(w, r, http.StatusForbidden, err)
		return
	}
	if slices.Contains(strings.Split(r.URL.Path, "/"), ".") || slices.Contains(strings.Split(r.URL.Path, "/"), "..") {
		// The mux would clean the path and redirect, to another endpoint: GET /v1/topics/./registered answered
		// for a topic named "registered". Topics named . or .. are not served here.
		a.fail(w, r, http.StatusBadRequest, fmt.Errorf("a path segment . or .. (a topic of that name) is not served by the admin API: %q", r.URL.Path))
		return
	}
	if strings.Contains(r.URL.EscapedPath(), "//") {
		// The same for an empty segment (a topic name left empty): GET /v1/topics//registered was redirected to the
		// topic named "registered". The escaped path, as the mux cleans it: a topic holding an escaped "/" is served.
		a.fail(w, r, http.StatusBadRequest, fmt.Errorf("an empty path segment (an empty topic name) is not served by the admin API: %q", r.URL.Path))
		return
	}
	if _, pattern := a.mux.Handler(r); pattern != "" {
		a.mux.ServeHTTP(w, r)
		return
	}
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		a.fail(w, r, http.StatusNotFound, fmt.Errorf("no endpoint %s (see docs/OPERATOR.md)", r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	a.fail(w, r, http.StatusMethodNotAllowed, fmt.Errorf("%s %s: method not allowed, use %s", r.Method, r.URL.Path,
		strings.Join(allow, " or ")))
}

// Close ends the open streams, interrupting their writes, and waits for their handlers to return. Streams asked
// for afterwards get 503. Requests in progress are not affected.
func (a *API) Close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	a.cancel()
	a.wg.Wait()
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// Self is the body of GET /v1/self.
type Self struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Self
	UptimeS        float64  `json:"uptime_s"`
	PeersInbound   int      `json:"peers_inbound"`
	PeersOutbound  int      `json:"peers_outbound"`
	RoutingEntries int      `json:"routing_entries"`
	Topics         []string `json:"topics"`
	BytesIn        uint64   `json:"bytes_in"`
	BytesOut       uint64   `json:"bytes_out"`
	Delivered      uint64   `json:"gossip_delivered"`
	Duplicates     uint64   `json:"gossip_duplicates"`
	// DelaySamples counts the messages from other nodes the delay quantiles are computed from.
	DelaySamples uint64  `json:"gossip_delay_samples"`
	DelayP50Ms   float64 `json:"gossip_delay_p50_ms"`
	DelayP99Ms   float64 `json:"gossip_delay_p99_ms"`
}

// Peer is one entry of GET /v1/peers.
type Peer struct {
	ID          string    `json:"id"`
	RemoteAddr  string    `json:"remote_addr"`
	ListenAddrs []string  `json:"listen_addrs"`
	Outbound    bool      `json:"outbound"`
	Kept        bool      `json:"kept"`
	RTTMs       float64   `json:"rtt_ms"`
	ConnectedAt time.Time `json:"connected_at"`
	QueuedBytes int       `json:"queued_bytes"`
	// LastRelayed is when the peer last delivered a gossip message first (actors.PeerInfo.LastRelayed); absent:
	// never.
	LastRelayed *time.Time `json:"last_relayed,omitempty"`
	// RekeyInterval is the frames each direction of the connection seals under one key (0: a peer that does not
	// rekey), Rekeys the keys replaced so far, both directions together (actors.PeerInfo).
	RekeyInterval uint64 `json:"rekey_interval"`
	Rekeys        uint64 `json:"rekeys"`
}

// RoutingEntry is one entry of GET /v1/routing.
type RoutingEntry struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"`
	LastSeen time.Time `json:"last_seen"`
	Failures int       `json:"failures"`
}

// Topic is the body of GET /v1/topics/{topic} and an entry of GET /v1/topics.
type Topic struct {
	Topic  string   `json:"topic"`
	Joined bool     `json:"joined"`
	Peers  []string `json:"peers"`
	Eager  []string `json:"eager"`
	Lazy   []string `json:"lazy"`
	Root   string   `json:"root,omitempty"`
	Parent string   `json:"parent,omitempty"`
	Dist   int      `json:"dist"`
}

// Registered is an entry of GET /v1/topics/{topic}/registered: a node registered on the topic in the DHT.
type Registered struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// PublishRequest is the body of POST /v1/topics/{topic}/messages: exactly one of Data (text) and DataBase64.
type PublishRequest struct {
	Data       *string `json:"data,omitempty"`
	DataBase64 *string `json:"data_base64,omitempty"`
}

// PublishResponse is the answer to a publication: the message id (hex).
type PublishResponse struct {
	ID string `json:"id"`
}

// SendRequest is the body of POST /v1/peers/{id}/messages. With Request set the call waits for the peer's reply
// (at most TimeoutMs, default Config.RequestTimeout).
type SendRequest struct {
	Protocol   string  `json:"protocol"`
	Data       *string `json:"data,omitempty"`
	DataBase64 *string `json:"data_base64,omitempty"`
	Request    bool    `json:"request,omitempty"`
	TimeoutMs  int     `json:"timeout_ms,omitempty"`
}

// SendResponse answers a SendRequest: Reply is set for requests.
type SendResponse struct {
	Sent  bool     `json:"sent"`
	Reply *Payload `json:"reply,omitempty"`
}

// Payload renders a received message: Data when it is bytes or text that are valid UTF-8, DataBase64 for other
// bytes, Type and JSON for other message types.
type Payload struct {
	Data       *string         `json:"data,omitempty"`
	DataBase64 *string         `json:"data_base64,omitempty"`
	Type       string          `json:"type,omitempty"`
	JSON       json.RawMessage `json:"json,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// Message is one event of the stream GET /v1/topics/{topic}/messages.
type Message struct {
	Topic   string    `json:"topic"`
	ID      string    `json:"id"`
	Origin  string    `json:"origin"`
	Seq     uint64    `json:"seq"`
	Hops    uint32    `json:"hops"`
	DelayMs float64   `json:"delay_ms"`
	Local   bool      `json:"local"`
	At      time.Time `json:"received_at"`
	Payload
}

func (a *API) self(w http.ResponseWriter, r *http.Request) {
	a.reply(w, http.StatusOK, a.selfInfo())
}

func (a *API) selfInfo() Self {
	return Self{ID: a.node.ID().String(), Addr: a.node.Addr().String()}
}

func (a *API) status(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	s := a.node.Stats()
	st := Status{Self: a.selfInfo(), UptimeS: time.Since(a.started).Seconds(), PeersInbound: s.PeersInbound,
		PeersOutbound: s.PeersOutbound, BytesIn: s.BytesIn, BytesOut: s.BytesOut, Topics: []string{}}
	if rt, err := a.node.RoutingTable(ctx); err == nil {
		st.RoutingEntries = len(rt.Entries)
	}
	if gs, err := a.node.GossipStats(ctx); err == nil {
		st.Topics = append(st.Topics, gs.Topics...)
		st.Delivered, st.Duplicates = gs.Router.Delivered, gs.Router.Duplicates
		st.DelaySamples = gs.Delay.Count
		if gs.Delay.Count > 0 {
			st.DelayP50Ms, st.DelayP99Ms = gs.Delay.Quantile(0.5), gs.Delay.Quantile(0.99)
		}
	}
	a.reply(w, http.StatusOK, st)
}

func (a *API) peers(w http.ResponseWriter, r *http.Request) {
	out := []Peer{}
	for _, p := range a.node.Peers() {
		e := Peer{ID: p.ID.String(), RemoteAddr: p.RemoteAddr, ListenAddrs: p.ListenAddrs,
			Outbound: p.Outbound, Kept: p.Kept, RTTMs: ms(p.RTT), ConnectedAt: p.ConnectedAt, QueuedBytes: p.QueuedBytes,
			RekeyInterval: p.RekeyInterval, Rekeys: p.Rekeys}
		if !p.LastRelayed.IsZero() {
			e.LastRelayed = &p.LastRelayed
		}
		out = append(out, e)
	}
	a.reply(w, http.StatusOK, out)
}

func (a *API) routing(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	rt, err := a.node.RoutingTable(ctx)
	if err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	out := []RoutingEntry{}
	for _, e := range rt.Entries {
		out = append(out, RoutingEntry{ID: e.ID.String(), Addr: e.Addr, LastSeen: e.LastSeen, Failures: e.Failures})
	}
	a.reply(w, http.StatusOK, out)
}

func (a *API) topics(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	gs, err := a.node.GossipStats(ctx)
	if err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	out := []Topic{}
	for _, t := range gs.Topics {
		info, err := a.node.Topic(ctx, t)
		if err != nil {
			a.fail(w, r, statusOf(err), err)
			return
		}
		out = append(out, topicOf(t, info))
	}
	a.reply(w, http.StatusOK, out)
}

func (a *API) topic(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	name := r.PathValue("topic")
	info, err := a.node.Topic(ctx, name)
	if err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	a.reply(w, http.StatusOK, topicOf(name, info))
}

// registered looks the topic's registered nodes up in the DHT (Node.FindTopicPeers).
func (a *API) registered(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	found, err := a.node.FindTopicPeers(ctx, r.PathValue("topic"))
	if err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	out := []Registered{}
	for _, p := range found {
		out = append(out, Registered{ID: p.ID.String(), Addr: p.Addr})
	}
	a.reply(w, http.StatusOK, out)
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if !a.decode(w, r, &req) {
		return
	}
	data, err := payloadBytes(req.Data, req.DataBase64)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	id, err := a.node.Publish(ctx, r.PathValue("topic"), wrapperspb.Bytes(data))
	if err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("publish: %w", err))
		return
	}
	a.reply(w, http.StatusCreated, PublishResponse{ID: id.String()})
}

func (a *API) send(w http.ResponseWriter, r *http.Request) {
	peer, err := session.ParseNodeID(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, fmt.Errorf("peer id: %w", err))
		return
	}
	var req SendRequest
	if !a.decode(w, r, &req) {
		return
	}
	if strings.TrimSpace(req.Protocol) == "" {
		a.fail(w, r, http.StatusBadRequest, errors.New(`"protocol" is required`))
		return
	}
	if req.TimeoutMs < 0 || req.TimeoutMs > maxTimeoutMs {
		a.fail(w, r, http.StatusBadRequest, fmt.Errorf(`"timeout_ms" must be in 0..%d (10 minutes)`, maxTimeoutMs))
		return
	}
	data, err := payloadBytes(req.Data, req.DataBase64)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	timeout := a.cfg.RequestTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if !req.Request {
		if err := a.node.Send(ctx, peer, req.Protocol, wrapperspb.Bytes(data)); err != nil {
			a.fail(w, r, statusOf(err), fmt.Errorf("send: %w", err))
			return
		}
		a.reply(w, http.StatusAccepted, SendResponse{Sent: true})
		return
	}
	reply, err := a.node.Request(ctx, peer, req.Protocol, wrapperspb.Bytes(data))
	if err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("request: %w", err))
		return
	}
	p := PayloadOf(reply, nil)
	a.reply(w, http.StatusOK, SendResponse{Sent: true, Reply: &p})
}

// decode reads a JSON body into v, answering 4xx itself when it cannot.
func (a *API) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	// application/json only, and required: a web page can POST text/plain, or a body without a type, to any
	// address without the browser asking first (CORS preflight).
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		a.fail(w, r, http.StatusUnsupportedMediaType, fmt.Errorf("content type %q: want application/json", r.Header.Get("Content-Type")))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		a.badBody(w, r, err, fmt.Errorf("bad JSON body: %w", err))
		return false
	}
	// Nothing may follow the value: More is false before a stray '}' or ']', which Token reports as an error.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		a.badBody(w, r, err, errors.New("bad JSON body: more after the value"))
		return false
	}
	return true
}

// badBody answers a body decode could not take: 413 when reading it crossed MaxBodyBytes, in the value or in what
// follows it (blanks past the limit after a complete value were a 400 "more after the value"), else 400 with msg.
func (a *API) badBody(w http.ResponseWriter, r *http.Request, err, msg error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", tooLarge.Limit))
		return
	}
	a.fail(w, r, http.StatusBadRequest, msg)
}

func (a *API) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	ev := a.cfg.Logger.Debug()
	if code >= 500 && r.Context().Err() == nil { // a client gone meanwhile is not the server's failure
		ev = a.cfg.Logger.Warn()
	}
	ev.Int("status", code).Str("method", r.Method).Str("path", r.URL.Path).Err(err).Msg("admin API request failed")
	a.reply(w, code, Error{Error: err.Error()})
}

// MaxSendTimeout bounds SendRequest.TimeoutMs: a larger one overflowed time.Duration into a negative, an
// immediate timeout.
const MaxSendTimeout = 10 * time.Minute

const maxTimeoutMs = int(MaxSendTimeout / time.Millisecond)

// statusOf maps the node's errors to HTTP status codes.
func statusOf(err error) int {
	var remote *actors.RemoteError
	switch {
	case errors.Is(err, actors.ErrBadReply), errors.Is(err, actors.ErrBadPayload) && errors.As(err, &remote):
		// The peer's reply could not be decoded, or the peer refused the payload: its answer, no fault of the
		// client's (they answered 400).
		return http.StatusBadGateway
	case errors.Is(err, gossip.ErrEmptyTopic), errors.Is(err, gossip.ErrTopicTooLong), errors.Is(err, gossip.ErrTopicNotUTF8), errors.Is(err, gossip.ErrMessageTooLarge),
		errors.Is(err, actors.ErrMessageTooLarge), errors.Is(err, actors.ErrSelf), errors.Is(err, actors.ErrBadPayload),
		errors.Is(err, actors.ErrInvalidArgument), errors.Is(err, session.ErrBadPeerAddr):
		return http.StatusBadRequest
	case errors.Is(err, actors.ErrUnknownPeer) && (!errors.Is(err, actors.ErrNotFound) || errors.Is(err, routing.ErrNoAnswer)) &&
		lookupStatus(err) != 0:
		// A peer whose address is unknown is looked up: a lookup that could not run, did not end, or that no node
		// answered (its ErrNotFound proves nothing) is no 404.
		return lookupStatus(err)
	case errors.Is(err, actors.ErrUnknownPeer), errors.Is(err, actors.ErrNotFound),
		errors.Is(err, actors.ErrUnknownProtocol):
		return http.StatusNotFound
	case errors.Is(err, actors.ErrBanned):
		return http.StatusForbidden
	case errors.Is(err, gossip.ErrNoPeers), errors.Is(err, gossip.ErrDuplicate), errors.Is(err, gossip.ErrLimit):
		// ErrLimit: a subscription to a new topic past MaxPeerTopics joined ones.
		return http.StatusConflict
	case errors.Is(err, gossip.ErrRejected), errors.Is(err, gossip.ErrIgnored):
		return http.StatusUnprocessableEntity
	case errors.Is(err, actors.ErrOverloaded):
		return http.StatusServiceUnavailable
	case errors.Is(err, actors.ErrDiscoveryDisabled):
		return http.StatusNotImplemented
	case errors.Is(err, actors.ErrRequestTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, actors.ErrRemote), errors.Is(err, actors.ErrPeerGone), errors.Is(err, actors.ErrSlowPeer),
		errors.Is(err, actors.ErrUnreachable):
		return http.StatusBadGateway
	case errors.Is(err, actors.ErrClosed), errors.Is(err, actors.ErrNotStarted), errors.Is(err, gossip.ErrRelayStopped),
		errors.Is(err, routing.ErrNoPeers), errors.Is(err, routing.ErrNoAnswer), errors.Is(err, routing.ErrTooManyLookups),
		routingEnded(err):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// routingEnded tells whether err is a lookup's ended by the routing actor's failure or stop, or its lookup actor's:
// the node's trouble, not the client's, and no proof that the peer is absent (503; it was 500, or 404 for a send).
func routingEnded(err error) bool {
	return errors.Is(err, routing.ErrRestarted) || errors.Is(err, routing.ErrStopped) ||
		errors.Is(err, routing.ErrLookupActorStopped)
}

// lookupStatus is the status of a lookup that ended without finding the peer nor proving it absent: the node knows
// no peer to ask, none it asked answered, or it runs too many lookups (503, as GET /v1/topics/{topic}/registered
// answers), discovery is off (501), the call's time ran out (504), the node closes (503); 0 for another cause.
func lookupStatus(err error) int {
	switch {
	case errors.Is(err, routing.ErrNoPeers), errors.Is(err, routing.ErrNoAnswer), errors.Is(err, routing.ErrTooManyLookups), errors.Is(err, actors.ErrClosed),
		errors.Is(err, actors.ErrNotStarted), routingEnded(err):
		return http.StatusServiceUnavailable
	case errors.Is(err, actors.ErrDiscoveryDisabled):
		return http.StatusNotImplemented
	case errors.Is(err, actors.ErrRequestTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return 0
}

func payloadBytes(text, b64 *string) ([]byte, error) {
	switch {
	case text != nil && b64 != nil:
		return nil, errors.New(`give "data" or "data_base64", not both`)
	case text != nil:
		return []byte(*text), nil
	case b64 != nil:
		b, err := base64.StdEncoding.DecodeString(*b64)
		if err != nil {
			return nil, fmt.Errorf(`"data_base64": %w`, err)
		}
		return b, nil
	default:
		return nil, errors.New(`"data" or "data_base64" is required`)
	}
}

// PayloadOf renders a received message m (nil with err when it could not be decoded) as the API shows it.
func PayloadOf(m proto.Message, err error) Payload {
	var p Payload
	switch v := m.(type) {
	case nil:
		if err != nil {
			p.Error = err.Error()
		}
	case *wrapperspb.BytesValue:
		p.setBytes(v.GetValue())
	case *wrapperspb.StringValue:
		p.setBytes([]byte(v.GetValue()))
	default:
		p.Type = string(m.ProtoReflect().Descriptor().FullName())
		if b, err := protojson.Marshal(m); err == nil {
			p.JSON = b
		}
	}
	return p
}

func (p *Payload) setBytes(b []byte) {
	if utf8.Valid(b) {
		s := string(b)
		p.Data = &s
		return
	}
	s := base64.StdEncoding.EncodeToString(b)
	p.DataBase64 = &s
}

func messageOf(d *gossip.Delivery) Message {
	return Message{Topic: d.Topic, ID: d.ID.String(), Origin: d.Origin.String(), Seq: d.Seq, Hops: d.Hops,
		DelayMs: ms(d.Delay), Local: d.Local, At: d.ReceivedAt, Payload: PayloadOf(d.Payload, d.Err)}
}

func topicOf(name string, info gossip.TopicInfo) Topic {
	ids := func(in []session.NodeID) []string {
		out := make([]string, len(in))
		for i, id := range in {
			out[i] = id.String()
		}
		return out
	}
	t := Topic{Topic: name, Joined: info.Joined, Peers: ids(info.Peers), Eager: ids(info.Eager), Lazy: ids(info.Lazy),
		Dist: info.Dist}
	if !info.Root.IsZero() {
		t.Root = info.Root.String()
	}
	if !info.Parent.IsZero() {
		t.Parent = info.Parent.String()
	}
	return t
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
