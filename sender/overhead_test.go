package sender

import (
	"errors"
	"testing"
	"time"
)

// TestPacketOverheadPaced: bytes a lower layer adds to every packet count
// against the rate, so packets plus overhead keep to it; an overhead out
// of range is refused.
func TestPacketOverheadPaced(t *testing.T) {
	const rate, overhead = 1e6, 164
	s := newSender(t, Config{Rate: rate, PacketOverhead: overhead})
	if _, err := s.SendData(make([]byte, 5<<20), nil); err != nil {
		t.Fatal(err)
	}
	msgs := drain(s, t0, 2*time.Second)
	bytes := 0
	for _, m := range msgs {
		b, _ := m.Append(nil)
		bytes += len(b) + overhead
	}
	if bytes > int(2*rate)+16*(1500+overhead) || bytes < int(1.9*rate) {
		t.Fatalf("%d bytes with overhead in 2 s at %v B/s", bytes, rate)
	}
	if st := s.Stats(); st.Bytes != uint64(bytes) {
		t.Fatalf("Stats.Bytes %d, want %d", st.Bytes, bytes)
	}
	for _, o := range []int{-1, 1025} {
		if _, err := New(Config{NodeID: 1, Rate: rate, PacketOverhead: o}, t0); !errors.Is(err, ErrConfig) {
			t.Fatalf("PacketOverhead %d: %v", o, err)
		}
	}
}
