package sender

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// TestStreamRepairSkipsSlotBeingFilled: a stream's next segment takes the
// ring slot of the segment a ring before it as soon as its first byte is
// written. A NACK for that older segment must then get a squelch, not a
// repair carrying the old segment's header over the new bytes (a receiver
// that misses the segment and asks late, such as one dropped by
// StreamTimeout or any receiver without flow control, got wrong data).
func TestStreamRepairSkipsSlotBeingFilled(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 4, Parity: 4, Rate: 1e7, StreamPartial: true})
	id, err := s.OpenStream(1, nil, FlushNone) // the smallest ring: two blocks, 8 segments
	if err != nil {
		t.Fatal(err)
	}
	ring := bytes.Repeat([]byte{1}, 8*100)
	now := t0
	for len(ring) > 0 && now.Before(t0.Add(time.Second)) {
		// The writer may run a ring less a block ahead of what was sent.
		n, err := s.WriteStream(id, ring, false)
		if err != nil {
			t.Fatal(err)
		}
		ring = ring[n:]
		drain(s, now, 50*time.Millisecond)
		now = now.Add(50 * time.Millisecond)
	}
	if len(ring) > 0 {
		t.Fatalf("%d bytes of the ring not written", len(ring))
	}
	drain(s, now, 50*time.Millisecond) // StreamPartial: released once sent
	now = now.Add(50 * time.Millisecond)
	// One byte of segment 8, which takes segment 0's slot; not sealed.
	if n, err := s.WriteStream(id, []byte{2}, false); err != nil || n != 1 {
		t.Fatalf("wrote %d of 1 byte past the ring: %v (the test needs it in the ring)", n, err)
	}
	feed(t, s, now, segmentNack(t, s, 2, id, 0, 0, 1))
	squelched := false
	for _, m := range drain(s, now, time.Second) {
		switch {
		case m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorSquelch:
			squelched = true
		case m.Type == framing.TypeData && m.Data.ObjectID == id && m.Data.PayloadID.Block == 0:
			data := m.Data.Payload[framing.StreamHeaderLen:]
			if m.Data.PayloadID.Symbol < 4 && bytes.IndexByte(data, 2) >= 0 {
				t.Errorf("repair of block 0 symbol %d carries the new segment's bytes", m.Data.PayloadID.Symbol)
			} else {
				t.Errorf("block 0 symbol %d repaired after its slot was reused", m.Data.PayloadID.Symbol)
			}
		}
	}
	if !squelched {
		t.Error("no squelch for a NACK of data no longer in the ring")
	}
}
