package simnet

import (
	"net/netip"
	"time"
)

// LinkStats counts what happened to the packets offered to one link. A
// packet is counted in Sent when it enters the link and in Delivered when a
// copy comes out of the far end (at the switch for an uplink, in the
// delivery callback for a downlink), so Sent - QueueDropped - Lost +
// Duplicated - Delivered are still in flight.
type LinkStats struct {
	Sent           uint64 // packets that entered the link
	SentBytes      uint64 // their payload bytes
	Delivered      uint64 // copies that came out, duplicates included
	DeliveredBytes uint64 // their payload bytes
	Lost           uint64 // dropped by the loss model
	QueueDropped   uint64 // dropped because the bottleneck queue was full
	Duplicated     uint64 // extra copies made
}

func (s *LinkStats) add(o LinkStats) {
	s.Sent += o.Sent
	s.SentBytes += o.SentBytes
	s.Delivered += o.Delivered
	s.DeliveredBytes += o.DeliveredBytes
	s.Lost += o.Lost
	s.QueueDropped += o.QueueDropped
	s.Duplicated += o.Duplicated
}

// NodeStats are the counters of one node.
type NodeStats struct {
	ID   NodeID
	Name string
	Addr netip.AddrPort
	Up   LinkStats // the node's outgoing packets, before fan-out
	Down LinkStats // packets to the node
	// Received and ReceivedBytes count the packets handed to the delivery
	// callback for this node, including local (loopback) ones that never
	// cross a link.
	Received      uint64
	ReceivedBytes uint64
	// Unroutable counts unicast sends to an address that no node has; they
	// are dropped before the uplink, as a router would.
	Unroutable uint64
}

// Stats is a snapshot of a whole network.
type Stats struct {
	Now      time.Time
	InFlight int         // scheduled events: packets on their way to the switch or to a node
	Nodes    []NodeStats // indexed by NodeID
	Up, Down LinkStats   // sums over all nodes
	Received uint64      // sum of the nodes' Received
}

// NodeStats returns the counters of node id. It does not allocate.
func (n *Network) NodeStats(id NodeID) NodeStats {
	nd := n.node(id)
	return NodeStats{
		ID:            id,
		Name:          nd.name,
		Addr:          nd.addr,
		Up:            nd.up.stats,
		Down:          nd.down.stats,
		Received:      nd.received,
		ReceivedBytes: nd.receivedBytes,
		Unroutable:    nd.unroutable,
	}
}

// Stats returns a snapshot of every counter in the network.
func (n *Network) Stats() Stats {
	s := Stats{
		Now:      n.Now(),
		InFlight: n.pending,
		Nodes:    make([]NodeStats, len(n.nodes)),
	}
	for i := range n.nodes {
		ns := n.NodeStats(NodeID(i))
		s.Nodes[i] = ns
		s.Up.add(ns.Up)
		s.Down.add(ns.Down)
		s.Received += ns.Received
	}
	return s
}
