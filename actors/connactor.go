package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/actormesh/actormesh/messages"
)

// connActor is the actor of one connection. It starts the connection's reader and writer goroutines, turns
// disconnect requests into a close with a reason, and when the connection is over tells its parent (the peer
// manager) and stops. It never does I/O itself.
type connActor struct {
	pc *peerConn
}

// Receive implements actor.Actor.
func (a *connActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		self, root := ctx.Self(), ctx.ActorSystem().Root
		a.pc.start(func() { root.Send(self, connDone{}) })
	case connDone:
		ctx.Request(ctx.Parent(), &messages.ConnClosed{
			PeerId: a.pc.id.Bytes(), Reason: a.pc.reason, Detail: a.pc.detail, ConnId: a.pc.connID,
		})
		ctx.Stop(ctx.Self())
	case *messages.DisconnectPeer:
		a.pc.shutdown(m.GetReason(), m.GetDetail())
	case *actor.Stopping:
		a.pc.shutdown(messages.DisconnectReason_DISCONNECT_REASON_SHUTDOWN, "node stopping")
		a.pc.stopDelivery() // a duplicate still delivering stops, and its linger ends within closeFlushTimeout
		<-a.pc.done         // bounded: the writer's last flush has a deadline and closing the socket ends the reader
	}
}
