package session_test

import (
	"context"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

type discardSink struct{}

func (discardSink) WriteAt(b []byte, _ int64) (int, error) { return len(b), nil }

// BenchmarkSessionTransfer sends a file between two lab hosts and reports
// throughput and heap allocations per packet over the whole path (sender
// and receiver sessions, sockets included). It needs root.
func BenchmarkSessionTransfer(b *testing.B) {
	l := lab.New(b, 2)
	group := netip.MustParseAddrPort("239.255.6.1:6800")
	var rx, tx *session.Session
	if err := l.Hosts[1].Do(func() (err error) {
		rx, err = session.New(session.Config{Group: group, Interface: lab.Iface, Seed: 1,
			FileSink: func(session.ObjectInfo) (io.WriterAt, error) { return discardSink{}, nil }})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if err := l.Hosts[0].Do(func() (err error) {
		tx, err = session.New(session.Config{Group: group, Interface: lab.Iface, Seed: 2, DisableLoopback: true,
			Sender: sender.Config{Rate: 60e6, GRTT: 5 * time.Millisecond}})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = tx.Shutdown(ctx)
		_ = rx.Shutdown(ctx)
	}()
	const size = 32 << 20
	ctx := context.Background()
	var ms0, ms1 runtime.MemStats
	b.SetBytes(size)
	b.ResetTimer()
	pkts := uint64(0)
	runtime.ReadMemStats(&ms0)
	for range b.N {
		before := tx.Stats().PacketsSent
		if _, err := tx.SendFile(ctx, simrun.PatternReader(1, 0, size), size, []byte("bench")); err != nil {
			b.Fatal(err)
		}
		o, err := rx.Accept(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := o.Wait(ctx); err != nil {
			b.Fatal(err)
		}
		pkts += tx.Stats().PacketsSent - before
	}
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(pkts), "allocs/packet")
}
