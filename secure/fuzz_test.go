package secure_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

// FuzzOpen feeds arbitrary bytes to an Opener in every mode: it must never
// panic, must count every packet exactly once, and must hand back only a
// well-formed NORM header no longer than its input.
func FuzzOpen(f *testing.F) {
	for _, m := range modes {
		s, _ := setup(f, m)
		for _, p := range samples(f, srcID, 9) {
			b, err := s.Seal(nil, p, t0)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	// Batch-signed packets.
	s, _ := setup(f, modes[3])
	var src, dst framing.Outbox
	for _, p := range samples(f, srcID, 9) {
		src.Commit(append(src.Buf(), p...), netip.AddrPort{})
	}
	s.SealAll(&dst, &src, t0)
	for i := range dst.Len() {
		b, _ := dst.Packet(i)
		f.Add(append([]byte(nil), b...))
	}
	f.Add([]byte{0x12, 0x05, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	openers := make([]*secure.Opener, len(modes))
	for i, m := range modes {
		_, openers[i] = setup(f, m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range openers {
			before := o.Stats()
			n := len(b)
			out, err := o.Open(append([]byte(nil), b...), t0.Add(time.Second))
			after := o.Stats()
			if after.Opened+after.Rejected() != before.Opened+before.Rejected()+1 {
				t.Fatalf("packet counted %d times", after.Opened+after.Rejected()-before.Opened-before.Rejected())
			}
			if err != nil {
				continue
			}
			if len(out) >= n {
				t.Fatalf("opened packet of %d bytes from %d", len(out), n)
			}
			if _, _, err := framing.ExtensionArea(out); err != nil {
				t.Fatalf("opened packet has a bad header: %v", err)
			}
		}
	})
}
