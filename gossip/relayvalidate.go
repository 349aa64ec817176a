package gossip

import (
	"context"
	"errors"

	"github.com/rs/zerolog"
)

// validatorsOf returns the validators of the local subscriptions to topic.
func (a *relayActor) validatorsOf(topic string) []Validator {
	var validators []Validator
	for _, s := range a.subs[topic] {
		if s.validator != nil {
			validators = append(validators, s.validator)
		}
	}
	return validators
}

// verify checks m's signature, building the signed bytes in a buffer the actor reuses.
func (a *relayActor) verify(m *Message) bool {
	a.stats.Verified++
	a.signed = AppendSignedBytes(a.signed[:0], m)
	ok := m.Origin.Verify(a.signed, m.Signature)
	if cap(a.signed) > 64<<10 {
		a.signed = nil // a large message's buffer is not kept
	}
	return ok
}

// verdictOf runs validators on a message described by d, on a goroutine of the actor's (wg), and returns their
// verdict: Reject if one rejected it, else Ignore if one did not accept it, else Accept. Their context ends with
// parent or after ValidationTimeout; once it has ended, the verdict is Ignore whatever they answered, as the
// Validator doc says (an Accept that came late published the node's own message, and a peer's one not yet
// expired by the heartbeat was relayed), and timedOut tells whether ValidationTimeout is what ended it (the
// Router counts that in Stats.TimedOut: a validator that honours its context always beats the heartbeat's
// expiry, so TimedOut never moved until stop 54).
func (a *relayActor) verdictOf(parent context.Context, d *Delivery, validators []Validator) (verdict Verdict, timedOut bool) {
	ctx, cancel := context.WithTimeout(parent, a.cfg.Router.ValidationTimeout)
	defer cancel()
	d.decode()
	verdict = Accept
	for _, v := range validators {
		switch call(ctx, v, d, a.log) {
		case Reject:
			verdict = Reject
		case Accept:
		default:
			if verdict == Accept {
				verdict = Ignore
			}
		}
		if verdict == Reject {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		// For a peer's message parent is the actor's context, which has no deadline (cancelled when it stops).
		return Ignore, errors.Is(err, context.DeadlineExceeded)
	}
	return verdict, false
}

// call runs a validator, turning a panic into Ignore.
func call(ctx context.Context, v Validator, d *Delivery, log zerolog.Logger) (verdict Verdict) {
	defer func() {
		if p := recover(); p != nil {
			log.Error().Interface("panic", p).Str("topic", d.Topic).Msg("gossip validator panicked; message ignored")
			verdict = Ignore
		}
	}()
	return v(ctx, d)
}
