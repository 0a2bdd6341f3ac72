package sender

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// advertised returns the back-off factor and group size field of the last
// sender message in msgs.
func advertised(t *testing.T, msgs []framing.Message) (backoff, gsize uint8) {
	t.Helper()
	for i := len(msgs) - 1; i >= 0; i-- {
		switch m := &msgs[i]; m.Type {
		case framing.TypeData:
			return m.Data.Backoff, m.Data.GroupSize
		case framing.TypeCmd:
			return m.Cmd.Backoff, m.Cmd.GroupSize
		case framing.TypeInfo:
			return m.Info.Backoff, m.Info.GroupSize
		}
	}
	t.Fatal("no sender message")
	return 0, 0
}

// TestTimersFollowGroup: with AdaptiveBackoff the back-off factor the
// sender advertises follows the receivers it hears, once a large group has
// had time to answer the first probe (6 GRTTs); without, or with no
// back-off, it stays fixed.
func TestTimersFollowGroup(t *testing.T) {
	ack := func(s *Sender, now time.Time, node uint32) {
		a := framing.Ack{Header: framing.Header{Type: framing.TypeAck, SourceID: node},
			ServerID: 1, InstanceID: s.InstanceID(), AckType: framing.AckCC}
		feed(t, s, now, &a)
	}
	q := framing.QuantizeGroupSize
	for _, c := range []struct {
		name      string
		cfg       Config
		receivers int
		backoff   uint8
		gsize     uint8
	}{
		{"two receivers", Config{AdaptiveBackoff: true}, 2, 2, q(1000)},
		{"ten receivers", Config{AdaptiveBackoff: true}, 10, 3, q(1000)},
		{"forty receivers", Config{AdaptiveBackoff: true}, 40, 4, q(1000)},
		{"factor 6, forty receivers", Config{AdaptiveBackoff: true, Backoff: 6}, 40, 5, q(1000)},
		{"factor 6, a hundred receivers", Config{AdaptiveBackoff: true, Backoff: 6}, 100, 6, q(1000)},
		{"not adaptive", Config{}, 2, 4, q(1000)},
		{"no backoff", Config{AdaptiveBackoff: true, Backoff: -1}, 40, 0, q(1000)},
		{"group size set", Config{AdaptiveBackoff: true, GroupSize: 50}, 2, 2, q(50)},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Rate = 300e3 // the data outlasts the test
			c.cfg.GRTT = 20 * time.Millisecond
			s := newSender(t, c.cfg)
			if _, err := s.SendData(make([]byte, 400_000), nil); err != nil {
				t.Fatal(err)
			}
			now := t0
			for step := range 12 {
				for i := range c.receivers {
					ack(s, now, uint32(100+i))
				}
				msgs := drain(s, now, 100*time.Millisecond)
				now = now.Add(100 * time.Millisecond)
				b, g := advertised(t, msgs)
				switch {
				case step == 1:
					continue // the estimate takes over at 120 ms
				case step == 0:
					// At first: what was configured, or the defaults for a
					// group not known yet.
					b, g = advertised(t, msgs[:1])
					wantB, wantG := uint8(4), c.gsize
					if c.cfg.Backoff != 0 {
						wantB = uint8(max(c.cfg.Backoff, 0))
					}
					if b != wantB || g != wantG {
						t.Fatalf("at %v: backoff %d gsize %d, want %d %d", now.Sub(t0), b, g, wantB, wantG)
					}
					continue
				}
				if b != c.backoff || g != c.gsize {
					t.Fatalf("at %v: backoff %d gsize %d, want %d %d", now.Sub(t0), b, g, c.backoff, c.gsize)
				}
			}
		})
	}
}
