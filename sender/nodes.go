package sender

import (
	"slices"
	"time"
)

// nodeIdle is how long a receiver heard from must have been silent before
// it may be dropped to make room for a new one: far longer than a repair
// cycle or a flow-control round, so that a real receiver that merely has
// nothing to ask is kept while ids that a storm used once make way.
func (s *Sender) nodeIdle() time.Duration {
	return max(10*time.Second, s.cfg.StreamTimeout, 4*s.grtt)
}

// sweepDue reports whether an eviction sweep may run now, and if so
// schedules the next one: a sweep costs work in proportion to the table,
// so under a storm of new ids it runs a few times per nodeIdle, not per
// packet.
func (s *Sender) sweepDue(next *time.Time) bool {
	if s.now.Before(*next) {
		return false
	}
	*next = s.now.Add(s.nodeIdle() / 8)
	return true
}

func (s *Sender) isListed(node uint32) bool {
	_, ok := slices.BinarySearch(s.listed, node)
	return ok
}

// evictNodes drops the acking nodes that were heard (not listed in
// Config.AckingNodes), have been silent for nodeIdle and are not owed an
// answer to a pending watermark. It reports whether it made room.
func (s *Sender) evictNodes() bool {
	if !s.sweepDue(&s.nodeSweep) {
		return false
	}
	idle := s.nodeIdle()
	keep := func(node uint32, seen time.Time) bool {
		return s.isListed(node) || s.now.Sub(seen) < idle || (s.wm != nil && s.wm.pending[node])
	}
	j := 0
	for i, n := range s.nodeSet {
		if keep(n, s.nodeSeen[i]) {
			s.nodeSet[j], s.nodeSeen[j] = n, s.nodeSeen[i]
			j++
		}
	}
	evicted := len(s.nodeSet) - j
	if evicted == 0 {
		return false
	}
	s.nodeSet, s.nodeSeen = s.nodeSet[:j], s.nodeSeen[:j]
	s.nodes = slices.DeleteFunc(s.nodes, func(n uint32) bool {
		_, found := slices.BinarySearch(s.nodeSet, n)
		return !found
	})
	s.stats.NodesEvicted += uint64(evicted)
	return true
}

// evictFlow drops the receivers stream flow control tracks that were heard
// (not listed), have been silent for nodeIdle and hold no writer back:
// given up on by StreamTimeout, or holding everything sent. It reports
// whether it made room.
func (s *Sender) evictFlow() bool {
	if !s.sweepDue(&s.flowSweep) {
		return false
	}
	idle := s.nodeIdle()
	o := s.flowStream()
	j := 0
	for _, n := range s.flow {
		holds := o != nil && !n.dropped && n.acked < o.stream.next
		if s.isListed(n.id) || s.now.Sub(n.heard) < idle || holds {
			s.flow[j] = n
			j++
			continue
		}
		delete(s.flowIndex, n.id)
	}
	evicted := len(s.flow) - j
	if evicted == 0 {
		return false
	}
	s.flow = s.flow[:j]
	for i, n := range s.flow {
		s.flowIndex[n.id] = i
	}
	s.stats.NodesEvicted += uint64(evicted)
	return true
}
