package main

import (
	"github.com/spf13/pflag"

	"github.com/actormesh/actormesh/actors"
	"github.com/actormesh/actormesh/gossip"
)

// gossipKnobs are the relay settings node sim lets a run change, the ones that trade the delay to the median node,
// duplicates and control messages against CPU: each flag defaults to the relay's own default.
type gossipKnobs struct {
	publishFanout, dlazy, meshGossipBeats int
}

func (k *gossipKnobs) flags(f *pflag.FlagSet) {
	def := actors.DefaultConfig().Gossip.Router
	f.IntVar(&k.publishFanout, "publish-fanout", def.PublishFanout, "topic peers besides its tree links a publisher "+
		"pushes each new message to (gossip.Config.PublishFanout): fewer cost less CPU, wire and duplicates, more cut "+
		"a hop to the median node")
	f.IntVar(&k.dlazy, "dlazy", def.Dlazy, "random topic peers outside the mesh that hear IHAVE per heartbeat "+
		"(gossip.Config.Dlazy)")
	f.IntVar(&k.meshGossipBeats, "mesh-gossip-beats", def.MeshGossipBeats, "while no repair goes on, each mesh "+
		"link hears IHAVE every this many heartbeats (gossip.Config.MeshGossipBeats)")
}

func (k gossipKnobs) apply(c *gossip.Config) {
	c.PublishFanout, c.Dlazy, c.MeshGossipBeats = k.publishFanout, k.dlazy, k.meshGossipBeats
}
