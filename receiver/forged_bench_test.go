package receiver_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/receiver"
)

// BenchmarkForgedSenders measures what a receiver engine spends on the
// lab's fake-senders attack (64 fake sender ids, a packet a millisecond,
// announcing 256 MiB in-memory objects and streams of 65,000-byte
// symbols): per packet, its handling and the Poll the session runs after
// it. A sending session pays this for every forged packet on the group.
// The engine is restarted every 2,000 packets (two seconds of the attack,
// about the lab transfer's length), so the figure is that of an attack's
// first seconds, not of a receiver whose buffers are long full.
func BenchmarkForgedSenders(b *testing.B) {
	const perRun = 2000
	a, err := simrun.NewAttack(simrun.HostileFakeSenders, 18)
	if err != nil {
		b.Fatal(err)
	}
	pkts := make([][]byte, perRun)
	for i := range pkts {
		pkts[i] = append([]byte(nil), a.Next()...)
	}
	from := netip.MustParseAddrPort("10.99.0.3:7180")
	var out framing.Outbox
	var r *receiver.Receiver
	t0 := time.Unix(1_700_000_000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%perRun == 0 {
			b.StopTimer()
			if r, err = receiver.New(receiver.Config{NodeID: 0x0a630001}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		now := t0.Add(time.Duration(i%perRun) * time.Millisecond)
		_ = r.HandlePacket(now, from, pkts[i%perRun])
		r.Events()
		out.Reset()
		r.Poll(now, &out)
		r.Events()
	}
}
