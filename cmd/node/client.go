package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/actormesh/actormesh/actors/adminapi"
	"github.com/actormesh/actormesh/session"
)

// clientOptions are the flags every client of the admin API shares.
type clientOptions struct {
	api     string
	asJSON  bool
	timeout time.Duration
	// silence is how long a stream may send nothing, keepalives included, before subscribe gives up on the node
	// (0: streamSilence).
	silence time.Duration
}

// streamSilence is how long `node subscribe` waits for a line of the stream, three of the API's 15 s keepalives.
const streamSilence = 45 * time.Second

// errSilent ends a stream that sent nothing for the silence allowed.
var errSilent = errors.New("the node sent nothing, not even a keepalive")

func (o *clientOptions) flags(cmd *cobra.Command, withTimeout bool) {
	f := cmd.Flags()
	f.StringVar(&o.api, "api", defaultAPIAddr, "host:port (or URL) of the node's admin API (env ACTORMESH_API)")
	f.BoolVar(&o.asJSON, "json", false, "print the API's JSON instead of text")
	if withTimeout {
		f.DurationVar(&o.timeout, "timeout", 10*time.Second, "longest wait for the answer")
	}
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyFlagSources(cmd, "ACTORMESH", ""); err != nil {
			return err
		}
		if withTimeout && o.timeout < 0 { // it meant no limit, silently
			return usagef("--timeout must not be negative (0: no limit)")
		}
		return nil
	}
}

// baseURL is the API's URL from --api: host:port or an http(s) URL.
func (o *clientOptions) baseURL() (string, error) {
	s := o.api
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usagef("--api %q: want host:port or an http URL", o.api)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// apiError is an answer of the API other than 2xx.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.msg, e.status) }

// do calls the API and decodes the JSON answer into out (unless nil); raw receives the body as is.
func (o *clientOptions) do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	base, err := o.baseURL()
	if err != nil {
		return nil, err
	}
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if o.timeout > 0 && errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			// The API was reached (or is slow to accept): it did not answer within the time given.
			return nil, fmt.Errorf("no answer from the admin API at %s within %v (--timeout)", base, o.timeout)
		}
		return nil, unreachable(base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the API's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorOf(resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("the API's answer is not what this client expects: %w", err)
		}
	}
	return raw, nil
}

// apiAnswerMargin is how much longer than the timeout it gives the API a client waits for the API's answer.
const apiAnswerMargin = 5 * time.Second

func unreachable(base string, err error) error {
	return fmt.Errorf("cannot reach the admin API at %s (is `node run` running with --api on that address?): %w", base, err)
}

func errorOf(status int, body []byte) error {
	var e adminapi.Error
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(body))
	}
	return &apiError{status: status, msg: e.Error}
}

// printJSON writes raw (the API's JSON) as is.
func printJSON(w io.Writer, raw []byte) error {
	_, err := w.Write(raw)
	return err
}

// show GETs path into out and prints it: the API's JSON with --json, else what text writes.
func (o *clientOptions) show(cmd *cobra.Command, path string, out any, text func(w io.Writer) error) error {
	raw, err := o.do(cmd.Context(), http.MethodGet, path, nil, out)
	if err != nil {
		return err
	}
	if o.asJSON {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	return text(cmd.OutOrStdout())
}

func newPeersCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List the connections of a running node (admin API client)",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var peers []adminapi.Peer
			return o.show(cmd, "/v1/peers", &peers, func(w io.Writer) error {
				return printPeers(w, peers)
			})
		}),
	}
	o.flags(cmd, true)
	return cmd
}

// printPeers writes one line per connection.
func printPeers(w io.Writer, peers []adminapi.Peer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tDIRECTION\tKEPT\tRTT\tREMOTE\tCONNECTED")
	for _, p := range peers {
		dir := "inbound"
		if p.Outbound {
			dir = "outbound"
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%.1f ms\t%s\t%s ago\n", p.ID, dir, p.Kept, p.RTTMs, p.RemoteAddr,
			time.Since(p.ConnectedAt).Round(time.Second))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d peers\n", len(peers))
	return err
}

func newTopicPeersCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "topic-peers TOPIC",
		Short: "List the nodes registered on a topic in the DHT, as a running node finds them (admin API client)",
		Long: "topic-peers asks a running node to look up in the DHT the nodes registered on TOPIC: the members of " +
			"a topic that few of the network's nodes join register there, so that the others find them (topic discovery).",
		Args: exactArgs(1, "TOPIC"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			var found []adminapi.Registered
			return o.show(cmd, "/v1/topics/"+url.PathEscape(args[0])+"/registered", &found, func(w io.Writer) error {
				for _, p := range found {
					// The address comes from the node's own record, which a hostile node chooses.
					if _, err := fmt.Fprintf(w, "%s@%s\n", terminalSafe(p.ID), terminalSafe(p.Addr)); err != nil {
						return err
					}
				}
				_, err := fmt.Fprintf(w, "%d nodes registered on %s\n", len(found), args[0])
				return err
			})
		}),
	}
	o.flags(cmd, true)
	return cmd
}

func newStatusCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what a running node is doing (admin API client)",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			var st adminapi.Status
			return o.show(cmd, "/v1/status", &st, func(w io.Writer) error { return printStatus(w, st) })
		}),
	}
	o.flags(cmd, true)
	return cmd
}

// printStatus writes the status as a two-column table.
func printStatus(w io.Writer, st adminapi.Status) error {
	topics := strings.Join(st.Topics, ", ")
	if topics == "" {
		topics = "none"
	}
	delay := "no message from another node yet"
	if st.DelaySamples > 0 {
		delay = fmt.Sprintf("%.1f / %.1f ms (%d samples)", st.DelayP50Ms, st.DelayP99Ms, st.DelaySamples)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range [][2]string{
		{"address", st.Addr},
		{"uptime", (time.Duration(st.UptimeS) * time.Second).String()},
		{"peers in / out", fmt.Sprintf("%d / %d", st.PeersInbound, st.PeersOutbound)},
		{"routing table", fmt.Sprintf("%d entries", st.RoutingEntries)},
		{"topics", topics},
		{"gossip delivered / duplicates", fmt.Sprintf("%d / %d", st.Delivered, st.Duplicates)},
		{"gossip delay p50 / p99", delay},
		{"bytes in / out", fmt.Sprintf("%d / %d", st.BytesIn, st.BytesOut)},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

// maxPayloadArg bounds a payload read from a file or stdin: a message is at most 1 MiB on the wire anyway.
const maxPayloadArg = 16 << 20

// payloadArg reads a data argument: text, or @FILE for a file's bytes (@- for stdin), at most maxPayloadArg of
// them. Bytes that are not UTF-8 travel as base64.
func payloadArg(arg string, stdin io.Reader) (text, b64 *string, err error) {
	b := []byte(arg)
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		if b, err = readBounded(name, stdin, maxPayloadArg); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", arg, err)
		}
	}
	s := string(b)
	if utf8.Valid(b) {
		return &s, nil, nil
	}
	enc := base64.StdEncoding.EncodeToString(b)
	return nil, &enc, nil
}

func newPublishCmd() *cobra.Command {
	var o clientOptions
	cmd := &cobra.Command{
		Use:   "publish <topic> <data|@file>",
		Short: "Publish a message on a topic through a running node (admin API client)",
		Long: "publish sends data (text, or the bytes of @file, @- for stdin) to every node subscribed to topic, " +
			"through the node at --api. It fails if no peer has joined the topic yet.",
		Args: exactArgs(2, "topic and data"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			text, b64, err := payloadArg(args[1], cmd.InOrStdin())
			if err != nil {
				return err
			}
			var out adminapi.PublishResponse
			raw, err := o.do(cmd.Context(), http.MethodPost, "/v1/topics/"+url.PathEscape(args[0])+"/messages",
				adminapi.PublishRequest{Data: text, DataBase64: b64}, &out)
			if err != nil {
				return err
			}
			if o.asJSON {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "published %s on %s\n", out.ID, args[0])
			return err
		}),
	}
	o.flags(cmd, true)
	return cmd
}

func newSendCmd() *cobra.Command {
	var (
		o       clientOptions
		request bool
	)
	cmd := &cobra.Command{
		Use:   "send <peer-id> <protocol> <data|@file>",
		Short: "Send a direct message to a peer through a running node (admin API client)",
		Long: "send delivers data to the protocol actor of the peer, through the node at --api (which finds the " +
			"peer through the DHT when it is not connected). With --request it waits for the reply and prints it; " +
			"every `node run` serves " + echoProtocol + ", which replies with what it got.",
		Args: exactArgs(3, "peer id, protocol and data"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			peer, err := session.ParseNodeID(args[0])
			if err != nil {
				if p, perr := session.ParsePeerAddr(args[0]); perr == nil {
					peer = p.ID
				} else {
					return usagef("peer %q: %w", args[0], err)
				}
			}
			if o.timeout > adminapi.MaxSendTimeout { // the API refused it, naming its own field
				return usagef("--timeout %v: want %v at most", o.timeout, adminapi.MaxSendTimeout)
			}
			if o.timeout < time.Millisecond { // the API's unit: less went as 0, which it reads as its default (10 s)
				return usagef("--timeout %v: want 1ms at least", o.timeout)
			}
			text, b64, err := payloadArg(args[2], cmd.InOrStdin())
			if err != nil {
				return err
			}
			req := adminapi.SendRequest{Protocol: args[1], Data: text, DataBase64: b64, Request: request,
				TimeoutMs: int(o.timeout.Milliseconds())}
			var out adminapi.SendResponse
			// The API gives up at the timeout it is given and answers why (504, the peer's error): the client
			// waits a little longer, so that this answer, not its own deadline, ends the call.
			call := o
			if call.timeout > 0 {
				call.timeout += apiAnswerMargin
			}
			raw, err := call.do(cmd.Context(), http.MethodPost, "/v1/peers/"+peer.String()+"/messages", req, &out)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.asJSON {
				return printJSON(w, raw)
			}
			if out.Reply == nil {
				_, err = fmt.Fprintf(w, "sent to %s\n", peer.Short())
				return err
			}
			_, err = fmt.Fprintln(w, payloadText(*out.Reply))
			return err
		}),
	}
	o.flags(cmd, true)
	cmd.Flags().BoolVar(&request, "request", false, "wait for the peer's reply and print it")
	return cmd
}

func newSubscribeCmd() *cobra.Command {
	var (
		o     clientOptions
		count int
	)
	cmd := &cobra.Command{
		Use:   "subscribe <topic>",
		Short: "Print the messages of a topic as a running node receives them (admin API client)",
		Long: "subscribe joins topic on the node at --api and prints each message it receives, one per line, until " +
			"interrupted (or --count messages). With --json each line is one JSON object.",
		Args: exactArgs(1, "topic"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usagef("--count must not be negative")
			}
			return o.subscribe(cmd.Context(), args[0], count, cmd.OutOrStdout(), cmd.ErrOrStderr())
		}),
	}
	o.flags(cmd, false)
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many messages (0: run until interrupted)")
	return cmd
}

// subscribe streams the topic's server-sent events to w. It returns nil when ctx ends or count messages came.
func (o *clientOptions) subscribe(ctx context.Context, topic string, count int, w, errw io.Writer) error {
	base, err := o.baseURL()
	if err != nil {
		return err
	}
	silence := cmp.Or(o.silence, streamSilence)
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(silence, func() { cancel(errSilent) }) // reset by every line
	defer watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/topics/"+url.PathEscape(topic)+"/messages", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), errSilent) {
			return fmt.Errorf("stream: %w for %v", errSilent, silence)
		}
		if parent.Err() != nil {
			return nil
		}
		return unreachable(base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return errorOf(resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	event, got := "", 0
	for sc.Scan() {
		watchdog.Reset(silence)
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ": subscribed"):
			fmt.Fprintf(errw, "subscribed to %s\n", topic)
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := strings.TrimPrefix(line, "data: ")
			switch event {
			case "dropped":
				fmt.Fprintf(errw, "warning: this client was too slow, the node dropped messages: %s\n", data)
			case "end":
				return fmt.Errorf("the node ended the stream: %s", data)
			case "message":
				if err := printMessage(w, data, o.asJSON); err != nil {
					return err
				}
				if got++; count > 0 && got >= count {
					return nil
				}
			}
		case line == "":
			event = ""
		}
	}
	if errors.Is(context.Cause(ctx), errSilent) {
		return fmt.Errorf("stream: %w for %v", errSilent, silence)
	}
	if parent.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stream: %w", err)
	}
	return errors.New("the node closed the stream")
}

func printMessage(w io.Writer, data string, asJSON bool) error {
	if asJSON {
		_, err := fmt.Fprintln(w, data)
		return err
	}
	var m adminapi.Message
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		return fmt.Errorf("stream event %q: %w", data, err)
	}
	origin := m.Origin
	if id, err := session.ParseNodeID(m.Origin); err == nil {
		origin = id.Short()
	}
	_, err := fmt.Fprintf(w, "%s %s from %s (hops %d, %.1f ms): %s\n", m.At.Format(time.TimeOnly), terminalSafe(m.Topic), terminalSafe(origin),
		m.Hops, m.DelayMs, payloadText(m.Payload))
	return err
}

// payloadText is a payload as one line of text, its control characters escaped (terminalSafe).
func payloadText(p adminapi.Payload) string {
	switch {
	case p.Data != nil:
		return terminalSafe(*p.Data)
	case p.DataBase64 != nil:
		return "base64:" + *p.DataBase64
	case p.Type != "":
		return terminalSafe(p.Type + " " + string(p.JSON))
	default:
		return terminalSafe("(undecodable: " + p.Error + ")")
	}
}

// terminalSafe escapes the control characters of s (C0 but tab, DEL, C1) as Go does in quoted strings: a remote
// payload printed raw could move the cursor, clear the screen or retitle the operator's terminal.
func terminalSafe(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// isControl tells whether r is a control character other than tab.
func isControl(r rune) bool { return r != '\t' && (r < 0x20 || r >= 0x7f && r <= 0x9f) }

// readBounded reads the file name ("-": stdin, when stdin is not nil) whole, failing if it holds more than limit bytes (a device such as
// /dev/zero never ends).
func readBounded(name string, stdin io.Reader, limit int64) ([]byte, error) {
	r := stdin
	if name != "-" || stdin == nil {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("more than %d bytes", limit)
	}
	return b, err
}
