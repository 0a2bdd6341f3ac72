package sender

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// TestStreamObjectNackRepaired: a receiver that lost everything of a
// stream (its NORM_INFO and every data packet) knows of it only by its
// object id and asks for it whole, as libnorm does. The sender answers
// with the stream's NORM_INFO and the blocks still in its ring, not with a
// squelch: a squelch names the oldest cached object, which tells that
// receiver nothing, and it asked again forever (TestShoalToLibnorm's
// stream never arrived when the libnorm receivers, short of CPU, dropped
// its first packets).
func TestStreamObjectNackRepaired(t *testing.T) {
	s := newSender(t, Config{GRTT: 10 * time.Millisecond, GRTTMax: 10 * time.Millisecond, SegmentSize: 100, BlockLen: 8, Rate: 1e6})
	id, err := s.OpenStream(8*8*100, []byte("s1.bin"), FlushPassive)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 20*100) // blocks 0 and 1 whole, block 2 half
	for i := range data {
		data[i] = byte(i)
	}
	if n, err := s.WriteStream(id, data, true); n != len(data) || err != nil {
		t.Fatalf("WriteStream: %d, %v", n, err)
	}
	if err := s.CloseStream(id); err != nil {
		t.Fatal(err)
	}
	drain(s, t0, 100*time.Millisecond)
	now := t0.Add(100 * time.Millisecond)
	feed(t, s, now, objectNack(t, s, 9, id))
	got := map[framing.PayloadID]bool{}
	info, squelches := 0, 0
	pollFor(s, now, 200*time.Millisecond, func(_ time.Time, msgs []framing.Message) {
		for _, m := range msgs {
			switch {
			case m.Type == framing.TypeData && m.Data.ObjectID == id:
				got[m.Data.PayloadID] = true
			case m.Type == framing.TypeInfo && m.Info.ObjectID == id:
				info++
			case m.Type == framing.TypeCmd && m.Cmd.Flavor == framing.FlavorSquelch:
				squelches++
			}
		}
	})
	// 20 data segments and the end marker.
	for seg := range 21 {
		if p := (framing.PayloadID{Block: uint32(seg / 8), Symbol: uint16(seg % 8)}); !got[p] {
			t.Errorf("segment %d (block %d symbol %d) not repaired", seg, p.Block, p.Symbol)
		}
	}
	if info == 0 || squelches != 0 {
		t.Errorf("%d NORM_INFO, %d squelches; want the NORM_INFO and no squelch", info, squelches)
	}
}
