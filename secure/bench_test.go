package secure_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// BenchmarkSeal and BenchmarkOpen measure the per-packet cost of each mode
// on a full-size NORM_DATA (1400-byte segment); MB/s counts packet bytes.
func BenchmarkSeal(b *testing.B) {
	pkt := fullData(b)
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s, _ := setup(b, m)
			buf := make([]byte, 0, 2048)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for range b.N {
				if _, err := s.Seal(buf[:0], pkt, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	pkt := fullData(b)
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s, o := setup(b, m)
			// Pre-seal distinct packets (the replay guard refuses
			// copies), in batches that fit in memory.
			const batch = 4096
			sealed := make([][]byte, batch)
			work := make([]byte, 2048)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for i := 0; i < b.N; i += batch {
				b.StopTimer()
				for j := range sealed {
					sealed[j], _ = s.Seal(sealed[j][:0], pkt, t0)
				}
				b.StartTimer()
				for j := 0; j < batch && i+j < b.N; j++ {
					w := append(work[:0], sealed[j]...)
					if _, err := o.Open(w, t0.Add(time.Millisecond)); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func fullData(t testing.TB) []byte {
	fti := must[framing.Extensions](t)(framing.AppendFTI(nil, 5, framing.FTI{TransferLength: 1 << 30, SymbolLength: 1400, MaxBlockLen: 64}))
	m := framing.Data{Header: framing.Header{Type: framing.TypeData, SourceID: srcID}, SenderFields: fields,
		FECID: 5, ObjectID: 3, PayloadID: framing.PayloadID{Block: 1, Symbol: 2}, Ext: fti,
		Payload: bytes.Repeat([]byte{0xa5}, 1408)}
	return must[[]byte](t)(m.Append(nil))
}
