package sender

import (
	"slices"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// TestIdleNodesEvicted: the receivers a sender tracks (acking nodes with
// TrackReceivers, stream flow control's table) used to be kept for ever,
// so node ids a storm used once filled MaxNodes and every real receiver
// heard later went untracked. Receivers silent for nodeIdle now make room;
// listed ones, and ones heard lately, stay.
func TestIdleNodesEvicted(t *testing.T) {
	s := newSender(t, Config{TrackReceivers: true, MaxNodes: 8, AckingNodes: []uint32{50}})
	nack := func(at time.Duration, node uint32) {
		feed(t, s, t0.Add(at), &framing.Nack{Header: framing.Header{Type: framing.TypeNack, SourceID: node},
			ServerID: 1, InstanceID: s.InstanceID()})
	}
	for i := range uint32(7) {
		nack(0, 1000+i) // a storm's ids, heard once
	}
	nack(time.Second, 2) // a real receiver, too early: all were heard lately
	if st := s.Stats(); st.NodesRefused != 1 || st.NodesEvicted != 0 || slices.Contains(s.nodes, 2) {
		t.Fatalf("full table of fresh nodes: stats %+v, nodes %v", st, s.nodes)
	}
	nack(25*time.Second, 1003) // one storm id heard again
	nack(30*time.Second, 3)
	want := []uint32{50, 1003, 3}
	if !slices.Equal(s.nodes, want) {
		t.Fatalf("nodes %v, want %v", s.nodes, want)
	}
	var flow []uint32
	for _, n := range s.flow {
		flow = append(flow, n.id)
	}
	if !slices.Equal(flow, want) {
		t.Fatalf("flow nodes %v, want %v", flow, want)
	}
	for i, n := range s.flow {
		if s.flowIndex[n.id] != i || len(s.flowIndex) != len(s.flow) {
			t.Fatalf("flow index %v for %v", s.flowIndex, flow)
		}
	}
	if st := s.Stats(); st.NodesEvicted != 2*6 {
		t.Fatalf("%d nodes evicted, want 6 from each table", st.NodesEvicted)
	}
	// A watermark waits for the nodes tracked: an evicted id is not asked.
	id, err := s.SendData(make([]byte, 100), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetWatermark(id); err != nil {
		t.Fatal(err)
	}
	if len(s.wm.pending) != 3 || s.wm.pending[1000] {
		t.Fatalf("watermark pending %v", s.wm.pending)
	}
}
