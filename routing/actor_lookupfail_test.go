package routing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/actormesh/actormesh/messages"
	"github.com/actormesh/actormesh/session"
)

// partlyReachableNet answers the requests to good at once, fails those to busy with ErrPeerBusy (an error reply, a full
// connection table), those to banned as the node fails a request to a peer it bans (ErrPeerBanned), and every other
// at once with a dial's error.
type partlyReachableNet struct {
	stallingNet
	good, busy, banned session.NodeID
}

func (n *partlyReachableNet) Request(_ context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	switch peer {
	case n.good:
		return &messages.Nodes{}, nil
	case n.busy:
		return nil, fmt.Errorf("%w: overloaded", ErrPeerBusy)
	case n.banned:
		return nil, fmt.Errorf("%w: peer is banned", ErrPeerBanned)
	}
	return nil, errors.New("peer unreachable: connection refused")
}

// The routing actor holds its lookups' unanswered requests against the table: a node whose dials fail in
// MaxLookupFailures lookups in a row is removed (Stats.LookupEvictions) and remembered as gone, so that its record
// relayed again is not taken (Stats.GoneRecords); a node that answers with an error (ErrPeerBusy) and one that
// answers stay. Until stop 60 both stayed until the revalidation reached them (here never: its interval is an hour).
func TestTheRoutingActorRemovesANodeItsLookupsCannotReach(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	good, dead, busy := identity(t, 61), identity(t, 62), identity(t, 63)
	net := &partlyReachableNet{stallingNet: stallingNet{id: identity(t, 60).NodeID()}, good: good.NodeID(), busy: busy.NodeID()}
	cfg := DefaultConfig()
	cfg.RevalidateInterval, cfg.RevalidateAnsweredInterval, cfg.IntroduceDelay = time.Hour, time.Hour, 0
	cfg.Table.LookupFailureSpacing = 0 // the lookups follow each other at once
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	var recs []*messages.NodeRecord
	for i, id := range []*session.Identity{good, dead, busy} {
		r, err := NewRecord(id, 1, []string{fmt.Sprintf("%d.0.0.1:4001", 70+i)})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	sys.Root.Send(pid, &AddRecords{Records: recs})
	if ids := tableIDs(t, sys, pid); len(ids) != 3 {
		t.Fatalf("%d entries, want the 3 records added", len(ids))
	}
	for n := 1; n <= cfg.Table.MaxLookupFailures; n++ {
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Target: KeyOf(dead.NodeID()), Reply: reply})
		if r := awaitLookup(t, reply, fmt.Sprintf("lookup %d", n)); r.Err != nil || r.Queried < 3 {
			t.Fatalf("lookup %d: %v after %d requests, want every entry asked and an answer", n, r.Err, r.Queried)
		}
		ids := tableIDs(t, sys, pid)
		if !ids[good.NodeID()] || !ids[busy.NodeID()] {
			t.Fatalf("after lookup %d: the node that answered (%v) or the busy one (%v) was removed", n,
				ids[good.NodeID()], ids[busy.NodeID()])
		}
		if gone := !ids[dead.NodeID()]; gone != (n == cfg.Table.MaxLookupFailures) {
			t.Fatalf("after %d lookups of %d that failed to reach it: the unreachable node removed %v", n,
				cfg.Table.MaxLookupFailures, gone)
		}
	}
	sys.Root.Send(pid, &AddRecords{Records: recs[1:2]}) // its record relayed again
	if st := statsOf(t, sys, pid); st.LookupEvictions != 1 || st.Evictions != 0 || st.GoneRecords != 1 {
		t.Fatalf("LookupEvictions %d, Evictions %d, GoneRecords %d; want 1, 0, 1", st.LookupEvictions, st.Evictions, st.GoneRecords)
	}
	if tableIDs(t, sys, pid)[dead.NodeID()] {
		t.Fatal("the removed node's record, relayed again, put it back")
	}
}

// lateNet answers the requests to good at once and learns the outcome of every other only well past its deadline,
// as a node whose goroutines are starved of CPU does: the request times out, and the lookup hears of it late.
type lateNet struct {
	stallingNet
	good session.NodeID
	late time.Duration
}

func (n *lateNet) Request(ctx context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	if peer == n.good {
		return &messages.Nodes{}, nil
	}
	<-ctx.Done()
	time.Sleep(n.late) // the starved goroutine, not a synchronisation: it runs this late
	return nil, ctx.Err()
}

// A lookup's request that failed because this node ran late (its outcome known long past its deadline: checkStalled)
// is not held against the node asked, as a liveness check's is not: a loaded host's own stalls removed live nodes
// (1-9 in each 500-node discovery run on a loaded host, stop 60).
func TestALookupRequestThisNodeRanLateIsNotHeldAgainstThePeer(t *testing.T) {
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	good, slow := identity(t, 61), identity(t, 62)
	cfg := DefaultConfig()
	cfg.RequestTimeout = 300 * time.Millisecond
	net := &lateNet{stallingNet: stallingNet{id: identity(t, 60).NodeID()}, good: good.NodeID(), late: 2 * cfg.RequestTimeout}
	cfg.RevalidateInterval, cfg.RevalidateAnsweredInterval, cfg.IntroduceDelay = time.Hour, time.Hour, 0
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	var recs []*messages.NodeRecord
	for i, id := range []*session.Identity{good, slow} {
		r, err := NewRecord(id, 1, []string{fmt.Sprintf("%d.0.0.1:4001", 70+i)})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	sys.Root.Send(pid, &AddRecords{Records: recs})
	for n := 1; n <= cfg.Table.MaxLookupFailures; n++ {
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Target: KeyOf(slow.NodeID()), Reply: reply})
		if r := awaitLookup(t, reply, fmt.Sprintf("lookup %d", n)); r.Err != nil || r.Queried < 2 {
			t.Fatalf("lookup %d: %v after %d requests, want both entries asked and an answer", n, r.Err, r.Queried)
		}
	}
	if st := statsOf(t, sys, pid); st.LookupEvictions != 0 || !tableIDs(t, sys, pid)[slow.NodeID()] {
		t.Fatalf("LookupEvictions %d: the node whose requests this node heard of late was removed", st.LookupEvictions)
	}
}

// refusingNet answers the requests to good at once, and to refuser the first time only: from then on its address
// closes the connection before the handshake, as it does for fake from the start; the requests to waiter fail after
// waiting half of timeout for a local connection slot.
type refusingNet struct {
	stallingNet
	good, refuser, fake, waiter session.NodeID
	timeout                     time.Duration
	mu                          sync.Mutex
	refuserAsked                bool
}

func (n *refusingNet) Request(_ context.Context, peer session.NodeID, _ string, _ proto.Message) (proto.Message, error) {
	refused := fmt.Errorf("%w: connection reset by peer", ErrRefusedBeforeHandshake)
	switch peer {
	case n.good:
		return &messages.Nodes{}, nil
	case n.refuser:
		n.mu.Lock()
		defer n.mu.Unlock()
		if !n.refuserAsked {
			n.refuserAsked = true
			return &messages.Nodes{}, nil
		}
		return nil, refused
	case n.waiter:
		return nil, &LocalWaitError{Waited: n.timeout / 2, Err: errors.New("request timed out")}
	}
	return nil, refused
}

// A lookup's request refused before the handshake (ErrRefusedBeforeHandshake) is not held against a node that
// answered this node before, and is against one that never did (a made-up record at an address that accepts and
// closes); one that failed after waiting for a local connection slot past a quarter of its time (LocalWaitError) is
// this node's lateness, held against nobody.
func TestALookupRequestRefusedBeforeTheHandshakeOrLateForALocalSlot(t *testing.T) {
	good, refuser, fake, waiter := identity(t, 61), identity(t, 62), identity(t, 63), identity(t, 64)
	ids, st := refusalLookups(t, refusalConfig(), good, refuser, fake, waiter, 3)
	if !ids[refuser.NodeID()] || !ids[waiter.NodeID()] || ids[fake.NodeID()] {
		t.Fatalf("in the table: the refuser that answered once %v, the one asked late %v, the made-up one %v; want true, true, false",
			ids[refuser.NodeID()], ids[waiter.NodeID()], ids[fake.NodeID()])
	}
	if st.LookupEvictions != 1 {
		t.Fatalf("LookupEvictions %d, want 1 (the made-up node)", st.LookupEvictions)
	}
}

// A node that answered once is spared refusals before the handshake for Config.RefusalGrace after its answer only:
// past it, its address's refusals count as any unreached request's. Spared for good, a node that answered once and
// then closed every connection unanswered (no handshake's work, for it) stayed in the table for good, handed to
// lookups and to other nodes.
func TestALookupRequestRefusedBeforeTheHandshakeCountsPastTheRefusalGrace(t *testing.T) {
	good, refuser, fake, waiter := identity(t, 61), identity(t, 62), identity(t, 63), identity(t, 64)
	cfg := refusalConfig()
	cfg.RefusalGrace = time.Nanosecond // the refuser's answer is old by its first refusal
	ids, st := refusalLookups(t, cfg, good, refuser, fake, waiter, 0)
	if ids[refuser.NodeID()] || ids[fake.NodeID()] || !ids[good.NodeID()] {
		t.Fatalf("in the table: the refuser that answered long ago %v, the made-up one %v, the good one %v; want false, false, true",
			ids[refuser.NodeID()], ids[fake.NodeID()], ids[good.NodeID()])
	}
	if st.LookupEvictions != 2 {
		t.Fatalf("LookupEvictions %d, want 2 (the refuser and the made-up node)", st.LookupEvictions)
	}
}

func TestRefusalGraceIsValidated(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RefusalGrace = 0
	if err := cfg.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "RefusalGrace") {
		t.Fatalf("Validate with RefusalGrace 0: %v, want ErrInvalidConfig naming RefusalGrace", err)
	}
}

// refusalConfig is the routing config of the refusal lookups' tests: no revalidation nor introductions, and
// lookups' failures counted one right after the other.
func refusalConfig() Config {
	cfg := DefaultConfig()
	cfg.RevalidateInterval, cfg.RevalidateAnsweredInterval, cfg.IntroduceDelay = time.Hour, time.Hour, 0
	cfg.Table.LookupFailureSpacing = 0 // the lookups follow each other at once
	return cfg
}

// refusalLookups starts a routing actor of cfg over a refusingNet, holding a record of good, refuser, fake and
// waiter, runs MaxLookupFailures+1 lookups of fake's key one after the other (each must end with an answer, after
// at least minQueried requests), and returns the table's node ids and the actor's stats once they are done.
func refusalLookups(t *testing.T, cfg Config, good, refuser, fake, waiter *session.Identity, minQueried int) (map[session.NodeID]bool, Stats) {
	t.Helper()
	sys := actor.NewActorSystem()
	defer sys.Shutdown()
	net := &refusingNet{stallingNet: stallingNet{id: identity(t, 60).NodeID()}, good: good.NodeID(),
		refuser: refuser.NodeID(), fake: fake.NodeID(), waiter: waiter.NodeID(), timeout: cfg.RequestTimeout}
	props, err := NewActorProps(cfg, net)
	if err != nil {
		t.Fatal(err)
	}
	pid := sys.Root.Spawn(props)
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	var recs []*messages.NodeRecord
	for i, id := range []*session.Identity{good, refuser, fake, waiter} {
		r, err := NewRecord(id, 1, []string{fmt.Sprintf("%d.0.0.1:4001", 70+i)})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	sys.Root.Send(pid, &AddRecords{Records: recs})
	for n := 0; n <= cfg.Table.MaxLookupFailures; n++ { // the first answered by the refuser
		reply := make(chan LookupResult, 1)
		sys.Root.Send(pid, &LookupRequest{Target: KeyOf(fake.NodeID()), Reply: reply})
		if r := awaitLookup(t, reply, fmt.Sprintf("lookup %d", n)); r.Err != nil || r.Queried < minQueried {
			t.Fatalf("lookup %d: %v after %d requests, want an answer after at least %d", n, r.Err, r.Queried, minQueried)
		}
	}
	return tableIDs(t, sys, pid), statsOf(t, sys, pid)
}
