package simnet

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkFanout measures the steady state of one sender multicasting
// 1400-byte packets every 100 µs to 1,000 impaired receivers: one op is one
// Send plus the deliveries that fall due meanwhile (about 1,000).
func BenchmarkFanout(b *testing.B) {
	for _, receivers := range []int{10, 1000} {
		b.Run(fmt.Sprint("receivers=", receivers), func(b *testing.B) {
			n, s := fanoutNet(receivers)
			payload := make([]byte, 1400)
			var delivered int64
			deliver := func(Packet) { delivered++ }
			now := n.Now()
			for range 500 {
				now = now.Add(100 * time.Microsecond)
				n.Send(now, s, grp, payload)
				n.DeliverUntil(now, deliver)
			}
			delivered = 0
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				now = now.Add(100 * time.Microsecond)
				n.Send(now, s, grp, payload)
				n.DeliverUntil(now, deliver)
			}
			b.ReportMetric(float64(delivered)/time.Since(start).Seconds(), "deliveries/s")
			b.ReportMetric(float64(delivered)/float64(b.N), "deliveries/op")
		})
	}
}

type counter struct{ got int64 }

func (c *counter) Handle(Packet) time.Time  { c.got++; return time.Time{} }
func (c *counter) Poll(time.Time) time.Time { return time.Time{} }

// BenchmarkTransfer16MiB is the bench sim workload without the protocol:
// 12,000 packets of 1,400 bytes (16 MiB) paced at 100 Mbit/s through Run to
// 1,000 impaired receivers, about 12 million deliveries per op.
func BenchmarkTransfer16MiB(b *testing.B) {
	const receivers, packets = 1000, 12_000
	b.ReportAllocs()
	var delivered int64
	var elapsed time.Duration
	for b.Loop() {
		n, s := fanoutNet(receivers)
		eps := make([]Endpoint, n.NumNodes())
		eps[s] = &ticker{n: n, id: s, period: 112 * time.Microsecond, count: packets}
		cs := make([]counter, receivers)
		for i := range cs {
			eps[i+1] = &cs[i]
		}
		start := time.Now()
		res := Run(n, eps, Limits{})
		elapsed += time.Since(start)
		if res.Reason != StopIdle {
			b.Fatalf("Run = %+v", res)
		}
		for i := range cs {
			delivered += cs[i].got
		}
	}
	b.ReportMetric(float64(delivered)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(delivered)/float64(b.N), "deliveries/op")
}
