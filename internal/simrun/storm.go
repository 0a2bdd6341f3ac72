package simrun

import (
	"slices"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
)

// storm is a faulty receiver: it multicasts a NACK asking for every object
// whole, over and over, whatever it holds.
type storm struct {
	net   *simnet.Network
	id    simnet.NodeID
	every time.Duration
	run   *runState
	inst  uint16
	seq   uint16
	until time.Time
	wake  time.Time
	buf   []byte
}

func newStorm(n *simnet.Network, sc Scenario, start time.Time, st *runState) *storm {
	every := sc.StormEvery
	if every == 0 {
		every = time.Millisecond
	}
	id := n.AddNode("storm", simnet.NodeConfig{Up: simnet.LinkConfig{Delay: sc.Delay}, Down: simnet.LinkConfig{Delay: sc.Delay}})
	n.Join(id, Group)
	return &storm{net: n, id: id, every: every, run: st, until: start.Add(30 * time.Second)}
}

func (s *storm) Handle(p simnet.Packet) time.Time {
	if h, _, err := framing.Peek(p.Payload); err == nil && h.Type != framing.TypeNack && h.Type != framing.TypeAck && len(p.Payload) >= 10 {
		s.inst = uint16(p.Payload[8])<<8 | uint16(p.Payload[9]) // the sender's instance id
	}
	return s.wake
}

func (s *storm) Poll(now time.Time) time.Time {
	if !now.Before(s.until) {
		s.wake = time.Time{}
		return s.wake
	}
	if now.Before(s.wake) {
		return s.wake
	}
	ids := make([]uint16, 0, len(s.run.objIDs))
	for id := range s.run.objIDs {
		ids = append(ids, id)
	}
	slices.Sort(ids) // map order would make the run irreproducible
	var items []framing.SymbolRef
	for _, id := range ids {
		items = append(items, framing.SymbolRef{FECID: framing.FECRS8, ObjectID: id})
	}
	content, err := framing.AppendRepairRequest(nil, framing.FormItems, framing.RepairObject, 0, items)
	if err == nil {
		m := framing.Nack{Header: framing.Header{Sequence: s.seq, SourceID: 0x0c000001}, ServerID: 0x0a000001, InstanceID: s.inst, Content: content}
		s.seq++
		if b, err := m.Append(s.buf[:0]); err == nil {
			s.buf = b
			s.net.Send(now, s.id, Group, b)
		}
	}
	s.wake = now.Add(s.every)
	return s.wake
}
