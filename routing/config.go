package routing

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/actormesh/actormesh/session"
)

// Config configures the routing actor. Start from DefaultConfig.
type Config struct {
	// Table configures the Kademlia table.
	Table TableConfig
	// Alpha is the number of parallel requests of a lookup (default 3).
	Alpha int
	// Beta ends a lookup once that many of the closest candidates have answered (default 3, as go-libp2p
	// kad-dht's resiliency); the k closest are then known from their answers. 0 means k: every one of the k
	// closest is asked, as in the Kademlia paper, which costs several times more requests (and handshakes).
	Beta int
	// RequestTimeout bounds one FindNode exchange (default 2s).
	RequestTimeout time.Duration
	// RevalidateInterval is how often, on average, the revalidation checks the liveness of a table entry (default
	// 30s); each wait is drawn from [1/2, 3/2] of it. Each tick checks the least recently seen entry that has not
	// answered the node yet (or failed a check since), not being checked already; see RevalidateAnsweredInterval
	// for the others. go-ethereum checks every 10s, but its check is one UDP ping; ours, of an entry the node is
	// not connected to (most of those not answered yet), costs both ends a connection, its handshake and an
	// exchange: ~1.5 ms of CPU. At 10s that was 40 % of an idle 200-node network's CPU.
	RevalidateInterval time.Duration
	// RevalidateAnsweredInterval is how often, on average, the least recently seen of the entries that answered the
	// node and failed no check since (routing.Entry.Answered) is checked instead, at the first tick once it is due
	// (default 90s; each wait drawn from [1/2, 3/2] of it). A node known to be up is the likeliest to stay up (the
	// Kademlia paper's observation); go-ethereum's table checks such nodes at a third of the rate of new ones too.
	RevalidateAnsweredInterval time.Duration
	// IntroduceDelay is how long after the table took a node from another node's word (a lookup's answer, an
	// exchange's, AddRecords) this node introduces itself, with a liveness check, to each of its neighbours that has
	// neither answered nor asked it (default 8s, each wait drawn from [1, 3/2] of it; 0 turns introductions off). Neighbours are as Table.Neighbours
	// tells: the neighbour is among this node's K nearest entries, or this node among the neighbour's K nearest as
	// far as the table knows. Neighbourhoods are not symmetric: a node whose refreshes ended before a neighbour
	// joined near it may never look that neighbour up, while the neighbour, which heard of it second-hand, never
	// contacts it; the revalidation (RevalidateInterval) reaches such a neighbour only if it is among the node's
	// own K nearest, one per tick. A tick introduces the node to at most Table.K neighbours, nearest first; the
	// next tick, IntroduceDelay later, to the others.
	IntroduceDelay time.Duration
	// MaxIntroductions bounds the introductions (each a liveness check, a dial and a handshake when not connected)
	// in progress at once (default 4): a tick's others start as these end. A tick started its up to Table.K at
	// once, so a burst of introductions (a join, a loaded host's ticks) made K dials together, each check with its
	// 2 s to answer while the host was busiest.
	MaxIntroductions int
	// RefusalGrace is how long after a node last answered this node a connection its address closes before the
	// handshake (ErrRefusedBeforeHandshake) is not held against it (default 10 minutes): past it, such refusals of
	// liveness checks and lookups' requests count as failures again. Unbounded, a node that answered once and then
	// closed every connection unanswered, at no handshake's cost, stayed in the table for good.
	RefusalGrace time.Duration
	// MaxInFlight bounds the discovery requests in progress outside lookups (default 64).
	MaxInFlight int
	// MaxLookups bounds the lookups in progress (default 32); one more fails with ErrTooManyLookups. Each has at
	// most Alpha requests in flight.
	MaxLookups int
	// RequestRate and RequestBurst limit the FindNode requests each peer may make (default 20/s, burst 50);
	// requests beyond are refused with an "overloaded" error.
	RequestRate  float64
	RequestBurst int
	// StorePath is the peer store file the table's records are saved to every SaveInterval and when the actor
	// stops (the bootstrapper loads it: a node gives both the same file, see actors.Config.Bootstrap); empty: no
	// store. SaveInterval defaults to 30s.
	StorePath    string
	SaveInterval time.Duration
	// CheckAge: a newcomer for a full bucket triggers a liveness check of the bucket's least recently seen entry
	// only if that entry was not seen for this long (default 30s); otherwise the newcomer just waits in the
	// replacement cache. Each check may cost a dial and a handshake. Only newcomers the node learns by asking
	// (lookups, the exchange with a new peer, AddRecords) trigger checks: neither a peer that asks the node, nor the
	// answer to a liveness check does, or checks would beget checks (a node answering another's check would check
	// one of its own entries, whose answer brings newcomers again...) and run at CheckRate forever.
	CheckAge time.Duration
	// CheckRate and CheckBurst bound those liveness checks (default one per 5s, burst 2): each may cost a dial,
	// and the exchange on a new connection teaches more newcomers, which could call for more checks. Newcomers
	// beyond wait in the replacement cache for the periodic revalidation.
	CheckRate  float64
	CheckBurst int
	// MisbehaviourBan is how long a peer is banned for a protocol violation: a NODES reply over MaxReplyRecords
	// records or with a sender record that is not its own (default 10m).
	MisbehaviourBan time.Duration
	// TopicTTL is how long a node's registration on a topic lasts (default 30m); the gossip relay renews its own
	// well before (gossip.Config.TopicRegisterInterval). MaxTopics bounds the topics this node keeps
	// registrations for (default 64; one more evicts the topic registered on least recently), TopicRegistrations
	// the registrations kept per topic (default 32; one more evicts the topic's oldest). The IP group (/24, /64,
	// as the table's IP limits) of the connection a registration comes over may hold at most an eighth of a
	// topic's registrations (at least 1) and MaxTopics/4 over all topics, and a registered record is at most
	// MaxRegisteredRecordSize (512) bytes: at the defaults a node holds at most 2048 registrations, ~1.3 MiB at
	// the largest records, ~0.4 MiB at honest ones (~130 bytes and the registration's own ~70).
	TopicTTL           time.Duration
	MaxTopics          int
	TopicRegistrations int
	// Logger receives the actor's logs.
	Logger zerolog.Logger
}

// DefaultConfig returns the defaults: the default table, alpha 3, beta 3, 2s requests, a liveness check every 30s on
// average (of an entry that answered: every 90s), introductions 8s after a node learned second-hand (4 at a time),
// refusals before the handshake spared for 10 minutes after an answer, at most 64 requests outside lookups and 32
// lookups at a time.
func DefaultConfig() Config {
	return Config{
		Table: DefaultTableConfig(), Alpha: DefaultAlpha, Beta: DefaultBeta, RequestTimeout: 2 * time.Second,
		RevalidateInterval: 30 * time.Second, RevalidateAnsweredInterval: 90 * time.Second, IntroduceDelay: 8 * time.Second, MaxIntroductions: 4, RefusalGrace: 10 * time.Minute, MaxInFlight: 64, MaxLookups: 32, RequestRate: 20, RequestBurst: 50, SaveInterval: 30 * time.Second,
		MisbehaviourBan: 10 * time.Minute, CheckAge: 30 * time.Second, CheckRate: 0.2, CheckBurst: 2,
		TopicTTL: 30 * time.Minute, MaxTopics: 64, TopicRegistrations: 32, Logger: zerolog.Nop(),
	}
}

// Validate checks c; errors wrap ErrInvalidConfig.
func (c Config) Validate() error {
	if err := c.Table.Validate(); err != nil {
		return err
	}
	if c.Table.K > MaxReplyRecords {
		return fmt.Errorf("%w: Table.K = %d: a node answers with up to K records, at most MaxReplyRecords (%d)",
			ErrInvalidConfig, c.Table.K, MaxReplyRecords)
	}
	if c.Beta < 0 {
		return fmt.Errorf("%w: Beta must not be negative (0 means k)", ErrInvalidConfig)
	}
	if c.TopicTTL <= 0 || c.MaxTopics < 1 || c.TopicRegistrations < 1 || c.TopicRegistrations > MaxReplyRecords {
		return fmt.Errorf("%w: TopicTTL, MaxTopics and TopicRegistrations must be positive, TopicRegistrations at most MaxReplyRecords (%d)",
			ErrInvalidConfig, MaxReplyRecords)
	}
	if err := session.CheckPositive(
		session.Field{Name: "Alpha", Value: c.Alpha}, session.Field{Name: "RequestTimeout", Value: c.RequestTimeout},
		session.Field{Name: "RevalidateInterval", Value: c.RevalidateInterval},
		session.Field{Name: "RevalidateAnsweredInterval", Value: c.RevalidateAnsweredInterval},
		session.Field{Name: "MaxInFlight", Value: c.MaxInFlight}, session.Field{Name: "MaxLookups", Value: c.MaxLookups},
		session.Field{Name: "MaxIntroductions", Value: c.MaxIntroductions},
		session.Field{Name: "RefusalGrace", Value: c.RefusalGrace},
		session.Field{Name: "RequestRate", Value: c.RequestRate}, session.Field{Name: "RequestBurst", Value: c.RequestBurst},
		session.Field{Name: "SaveInterval", Value: c.SaveInterval}, session.Field{Name: "MisbehaviourBan", Value: c.MisbehaviourBan},
		session.Field{Name: "CheckRate", Value: c.CheckRate}, session.Field{Name: "CheckBurst", Value: c.CheckBurst},
	); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if c.CheckAge < 0 {
		return fmt.Errorf("%w: CheckAge must not be negative, got %v", ErrInvalidConfig, c.CheckAge)
	}
	if c.IntroduceDelay < 0 {
		return fmt.Errorf("%w: IntroduceDelay must not be negative (0 turns introductions off), got %v", ErrInvalidConfig, c.IntroduceDelay)
	}
	return nil
}
