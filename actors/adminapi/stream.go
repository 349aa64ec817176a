package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/actormesh/actormesh/gossip"
)

// errTooManyStreams refuses a stream beyond Config.MaxStreams.
var errTooManyStreams = errors.New("too many streams open")

// startStream counts a stream in, unless Close has begun or MaxStreams are open; endStream counts it out.
func (a *API) startStream() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errors.New("the admin API is closing")
	}
	if a.streams >= a.cfg.MaxStreams {
		return fmt.Errorf("%w (%d)", errTooManyStreams, a.cfg.MaxStreams)
	}
	a.streams++
	a.wg.Add(1)
	return nil
}

func (a *API) endStream() {
	a.mu.Lock()
	a.streams--
	a.mu.Unlock()
	a.wg.Done()
}

// closeGrace is how long a stream has to send its "end" event once the API closes.
const closeGrace = time.Second

// stream serves a topic's messages as server-sent events ("message" events with a Message as JSON data, and
// "dropped" events telling how many messages a slow client missed) until the client leaves or the API closes, or
// the subscription ends (the node closed): an "end" event then closes the stream.
func (a *API) stream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		a.fail(w, r, http.StatusInternalServerError, errors.New("streaming unsupported by this server"))
		return
	}
	topic := r.PathValue("topic")
	if err := a.startStream(); err != nil {
		a.fail(w, r, http.StatusServiceUnavailable, err)
		return
	}
	defer a.endStream()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Close lets the stream say it ends ("end" event) for closeGrace, then ends it: a client that stops reading
	// must not hold Close for good. (Cut at once, the stream ended in an "unexpected EOF" at the client.)
	stop := context.AfterFunc(a.ctx, func() {
		t := time.AfterFunc(closeGrace, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	defer stop()
	// Each write has WriteTimeout, and the end of the stream (the client gone, Close) interrupts one in
	// progress: a client that stops reading must not hold the handler, nor Close, for good.
	rc := http.NewResponseController(w)
	stopWrites := context.AfterFunc(ctx, func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stopWrites()
	write := func(f func() error) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(a.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return false
		}
		if ctx.Err() != nil || f() != nil {
			return false
		}
		flusher.Flush()
		return true
	}

	ch := make(chan *gossip.Delivery, a.cfg.StreamBuffer)
	var mu sync.Mutex
	dropped, queued := 0, 0 // queued: the payload bytes in ch
	sub, err := a.node.Subscribe(ctx, topic, func(d *gossip.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		if queued+len(d.Data) > a.cfg.StreamBufferBytes {
			dropped++
			return
		}
		select {
		case ch <- d:
			queued += len(d.Data)
		default:
			dropped++
		}
	})
	if err != nil {
		a.fail(w, r, statusOf(err), fmt.Errorf("subscribe: %w", err))
		return
	}
	defer sub.Cancel()
	a.cfg.Logger.Info().Str("topic", topic).Str("client", r.RemoteAddr).Msg("stream opened")
	defer a.cfg.Logger.Info().Str("topic", topic).Str("client", r.RemoteAddr).Msg("stream closed")

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// A first comment line, so that the client knows the subscription is in place.
	if !write(func() error {
		w.WriteHeader(http.StatusOK)
		_, err := fmt.Fprintf(w, ": subscribed to %q\n\n", topic) // quoted: a newline in a name forged events
		return err
	}) {
		return
	}
	keepalive := time.NewTicker(a.cfg.StreamKeepalive)
	defer keepalive.Stop()
	end := func(reason string) {
		write(func() error {
			_, err := fmt.Fprintf(w, "event: end\ndata: {\"reason\":%q}\n\n", reason)
			return err
		})
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.ctx.Done():
			end("the node is stopping")
			return
		case <-sub.Done():
			// The node closed, or its relay stopped for good: no message will come, and the stream says so rather
			// than send keepalives for ever.
			end("the subscription ended")
			return
		case <-keepalive.C:
			if !write(func() error { _, err := io.WriteString(w, ": keepalive\n\n"); return err }) {
				return
			}
		case d := <-ch:
			mu.Lock()
			n := dropped
			dropped, queued = 0, queued-len(d.Data)
			mu.Unlock()
			b, err := json.Marshal(messageOf(d))
			if err != nil {
				continue
			}
			if !write(func() error {
				if n > 0 {
					if _, err := fmt.Fprintf(w, "event: dropped\ndata: {\"dropped\":%d}\n\n", n); err != nil {
						return err
					}
				}
				_, err := fmt.Fprintf(w, "event: message\ndata: %s\n\n", b)
				return err
			}) {
				return
			}
		}
	}
}
