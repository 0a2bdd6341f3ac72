package sender

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// TestStreamTimeoutSparesCaughtUp: of two listed receivers, node 2 never
// confirms a stream and node 3 confirms every watermark request at once.
// The writer waits for node 2 for StreamTimeout, then the sender drops it
// (one EventSlowReceiver) and the writer goes on. Node 3, which confirmed
// everything while the writer was held back, must not be dropped when the
// writer resumes: it owed nothing while it held all that was sent, so
// its timeout runs only from when it next lacks data.
func TestStreamTimeoutSparesCaughtUp(t *testing.T) {
	const timeout = 100 * time.Millisecond
	s := newSender(t, Config{Rate: 1e7, GRTT: time.Millisecond, AckingNodes: []uint32{2, 3}, StreamTimeout: timeout})
	id, err := s.OpenStream(1, nil, FlushNone) // the smallest ring: two blocks
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 8192)
	var out framing.Outbox
	var m framing.Message
	dropped := map[uint32]int{}
	written := 0
	sawWindow := false // Stats named node 2 as the limiter, with data waiting for it
	now := t0
	for now.Before(t0.Add(600 * time.Millisecond)) {
		n, err := s.WriteStream(id, chunk, false)
		if err != nil {
			t.Fatal(err)
		}
		written += n
		out.Reset()
		next := s.Poll(now, &out)
		for i := range out.Len() {
			b, _ := out.Packet(i)
			if m.Unmarshal(append([]byte(nil), b...)) != nil || m.Type != framing.TypeCmd || m.Cmd.Flavor != framing.FlavorFlush {
				continue
			}
			for j := range m.Cmd.NodeCount() {
				if m.Cmd.Node(j) != 3 {
					continue
				}
				payload, err := framing.AppendSymbolRef(nil, m.Cmd.Ref, 0)
				if err != nil {
					t.Fatal(err)
				}
				feed(t, s, now, &framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: 3},
					ServerID: 1, InstanceID: s.InstanceID(), AckType: framing.AckFlush, Payload: payload})
			}
		}
		for _, e := range s.Events() {
			if e.Kind == EventSlowReceiver {
				dropped[e.Node]++
			}
		}
		if st := s.Stats(); now.After(t0.Add(timeout/2)) && now.Before(t0.Add(timeout)) && st.FlowLimiter == 2 && st.FlowWindow > 0 {
			sawWindow = true
		}
		// Wake when the sender asks, but often enough to keep writing.
		step := min(max(next.Sub(now), 50*time.Microsecond), time.Millisecond)
		now = now.Add(step)
	}
	st := s.Stats()
	t.Logf("wrote %d bytes; writer held back %v; dropped %v", written, st.FlowBlocked, dropped)
	if dropped[2] != 1 {
		t.Errorf("node 2, which never confirmed, dropped %d times, want once", dropped[2])
	}
	if dropped[3] != 0 {
		t.Errorf("node 3, which confirmed every request, dropped %d times", dropped[3])
	}
	if !sawWindow {
		t.Error("while node 2 held the writer back, Stats did not show it as FlowLimiter with a FlowWindow")
	}
	if st.FlowBlocked < timeout {
		t.Errorf("writer held back only %v: it never waited for node 2", st.FlowBlocked)
	}
	if ring := 2 * 64 * 1400; written < 4*ring {
		t.Errorf("only %d bytes written: the writer did not go on after node 2 was dropped", written)
	}
}
