package secure_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/secure"
)

// outbox fills an outbox with n packets of the sample types, in turn.
func outbox(t *testing.T, n int) (*framing.Outbox, [][]byte) {
	pk := samples(t, srcID, 9)
	ns := names(pk)
	var o framing.Outbox
	var want [][]byte
	for i := range n {
		b := append(o.Buf(), pk[ns[i%len(ns)]]...)
		o.Commit(b, netip.AddrPort{})
		want = append(want, pk[ns[i%len(ns)]])
	}
	return &o, want
}

// TestSealAll: in every mode, every batch size up to past two batches
// opens back into the engines' packets, in any order and with any subset
// lost; under signatures a tampered or foreign batch is refused.
func TestSealAll(t *testing.T) {
	for _, m := range modes {
		for _, n := range []int{1, 2, 3, 7, 16, 17, 40} {
			s, o := setup(t, m)
			src, want := outbox(t, n)
			var dst framing.Outbox
			if failed := s.SealAll(&dst, src, t0); failed != 0 || dst.Len() != n {
				t.Fatalf("%s n=%d: %d failed, %d sealed", m.name, n, failed, dst.Len())
			}
			// Open from the last to the first, skipping every third.
			for i := n - 1; i >= 0; i-- {
				if i%3 == 1 {
					continue
				}
				b, _ := dst.Packet(i)
				if len(b)-len(want[i]) > (&secure.Config{Keys: secure.NewKeyring(), SigningKey: seedSK}).Overhead() {
					t.Fatalf("%s: overhead %d", m.name, len(b)-len(want[i]))
				}
				got, err := o.Open(bytes.Clone(b), t0)
				if err != nil || !bytes.Equal(got, want[i]) {
					t.Fatalf("%s n=%d packet %d: %v", m.name, n, i, err)
				}
			}
		}
	}
}

// TestBatchTamper: every bit flip of a batch-signed packet is refused,
// including in its path and index; so are batches signed by an untrusted
// key, even when a trusted batch is cached.
func TestBatchTamper(t *testing.T) {
	m := modes[4] // signatures alone: nothing but the batch signature guards the packet
	s, o := setup(t, m)
	src, _ := outbox(t, 5)
	var dst framing.Outbox
	s.SealAll(&dst, src, t0)
	tries := uint64(0)
	for i := range dst.Len() {
		orig, _ := dst.Packet(i)
		for bit := range len(orig) * 8 {
			if bit%8 != (bit/8)%8 && bit/8 > 120 {
				continue // one bit per byte past the header and EXT_AUTH
			}
			b := bytes.Clone(orig)
			b[bit/8] ^= 1 << (bit % 8)
			tries++
			if _, err := o.Open(b, t0); err == nil {
				t.Fatalf("packet %d bit %d accepted", i, bit)
			}
		}
	}
	if st := o.Stats(); st.Rejected() != tries || st.Opened != 0 {
		t.Fatalf("stats %+v, %d tries", st, tries)
	}
	// A genuine packet caches its batch's root; an impostor's batch still
	// needs its own valid signature.
	first, _ := dst.Packet(0)
	if _, err := o.Open(bytes.Clone(first), t0); err != nil {
		t.Fatal(err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	imp := must[*secure.Sealer](t)(secure.NewSealer(secure.Config{SigningKey: other}, t0.Add(time.Second)))
	var forged framing.Outbox
	imp.SealAll(&forged, src, t0)
	for i := range forged.Len() {
		b, _ := forged.Packet(i)
		if _, err := o.Open(bytes.Clone(b), t0); !errors.Is(err, secure.ErrSignature) {
			t.Fatalf("impostor packet %d: %v", i, err)
		}
	}
}

// BenchmarkSealAll measures batch signing per packet (full-size DATA, in
// batches of MaxBatch) and the opening of the packets it makes.
func BenchmarkSealAll(b *testing.B) {
	pkt := fullData(b)
	var src framing.Outbox
	for range secure.MaxBatch {
		src.Commit(append(src.Buf(), pkt...), netip.AddrPort{})
	}
	for _, m := range modes {
		if !strings.Contains(m.name, "sig") {
			continue
		}
		b.Run(m.name+"/seal", func(b *testing.B) {
			s, _ := setup(b, m)
			var dst framing.Outbox
			b.SetBytes(int64(len(pkt)))
			for i := 0; i < b.N; i += secure.MaxBatch {
				dst.Reset()
				s.SealAll(&dst, &src, t0)
			}
		})
		b.Run(m.name+"/open", func(b *testing.B) {
			s, o := setup(b, m)
			var dst framing.Outbox
			work := make([]byte, 2048)
			b.SetBytes(int64(len(pkt)))
			for i := 0; i < b.N; i += secure.MaxBatch {
				b.StopTimer()
				dst.Reset()
				s.SealAll(&dst, &src, t0)
				b.StartTimer()
				for j := 0; j < dst.Len() && i+j < b.N; j++ {
					p, _ := dst.Packet(j)
					if _, err := o.Open(append(work[:0], p...), t0.Add(time.Millisecond)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
