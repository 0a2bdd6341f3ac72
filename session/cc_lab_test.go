package session_test

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// ccSample is the sender's congestion state at one moment of a transfer.
type ccSample struct {
	at        time.Duration
	rate      float64 // bytes per second
	clr       uint32
	slowStart bool
	feedback  uint64
	bytes     uint64 // sent so far
}

var qdiscCounters = regexp.MustCompile(`Sent \d+ bytes (\d+) pkt \(dropped (\d+)`)

// qdiscStats reads how many packets the host's root qdisc (the tbf) sent
// and how many times it dropped. A drop may be a whole UDP GSO batch: the
// qdisc sees the batch as one buffer and counts one drop, but every packet
// it sent.
func qdiscStats(h *lab.Host) (sent, drops uint64, err error) {
	out, err := h.Exec("tc", "-s", "qdisc", "show", "dev", lab.Iface)
	if err != nil {
		return 0, 0, fmt.Errorf("tc -s qdisc: %v\n%s", err, out)
	}
	m := qdiscCounters.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no qdisc counters in %q", out)
	}
	sent, _ = strconv.ParseUint(m[1], 10, 64)
	drops, _ = strconv.ParseUint(m[2], 10, 64)
	return sent, drops, nil
}

// TestLabCCBottleneck sends 16 MiB under NORM-CC to two receivers from a
// host whose link a token bucket (tc tbf, see lab.SetRate: 64 KB burst and
// a queue of 50 ms) limits to 50 Mbit/s. The controller has to find the
// bottleneck on its own, from below (the default start rate) and from
// twice above it. Every receiver must get the data intact; the goodput
// must reach a good share of the link and cannot exceed it; the sender
// must have heard feedback and elected a limiting receiver (CLR), and its
// rate must end within a factor of two of the link's. The last run adds a
// 40 ms round trip.
func TestLabCCBottleneck(t *testing.T) {
	l := lab.New(t, 3)
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("lab: tc (iproute2) is not installed; skipping bottleneck test")
	}
	const linkRate = 50e6 // bit/s
	if err := l.Hosts[0].SetRate("50mbit"); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name  string
		start float64       // sender.Config.Rate: the start rate, bytes/s
		delay time.Duration // added to the receivers' feedback
	}{
		{"start=default", 0, 0},
		{"start=2x", 2 * linkRate / 8, 0},
		// A round trip of 40 ms, so that the bandwidth-delay product
		// (250 KB, some 170 packets) is one at which slow start has to
		// stop on a queue it sees a round trip late, as on a long path:
		// the lab's own round trip is a fraction of a millisecond. The
		// kernel has no netem here, so the receivers hold their feedback
		// back themselves (delayConn); the data crosses the tbf as
		// before.
		{"start=default,rtt=40ms", 0, 40 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			short, stalled := ccBottleneck(t, l, linkRate, c.start, c.delay, 7100+i)
			if len(short) > 0 && stalled != "" {
				// Measured the machine's load, not the controller: once
				// more, and that run decides.
				t.Logf("missed %q, but %s: running the case again", short, stalled)
				short, _ = ccBottleneck(t, l, linkRate, c.start, c.delay, 7200+i)
			}
			for _, m := range short {
				t.Error(m)
			}
		})
	}
}

// delayConn holds every datagram written for a fixed delay before it
// sends it, in order, from a goroutine of its own that Close ends.
type delayConn struct {
	session.PacketConn
	delay time.Duration
	mu    sync.Mutex
	queue []delayedMsg
	wake  chan struct{}
	done  chan struct{}
	once  sync.Once
}

type delayedMsg struct {
	due time.Time
	buf []byte
	dst netip.AddrPort
}

func newDelayConn(inner session.PacketConn, d time.Duration) *delayConn {
	c := &delayConn{PacketConn: inner, delay: d, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *delayConn) WriteBatch(msgs []session.Message) (int, error) {
	due := time.Now().Add(c.delay)
	c.mu.Lock()
	for _, m := range msgs {
		c.queue = append(c.queue, delayedMsg{due: due, buf: append([]byte(nil), m.Buf...), dst: m.Addr})
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return len(msgs), nil
}

func (c *delayConn) run() {
	for {
		c.mu.Lock()
		var next delayedMsg
		ok := len(c.queue) > 0
		if ok {
			next = c.queue[0]
		}
		c.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = time.Until(next.due)
		}
		if wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-c.wake:
			case <-c.done:
				timer.Stop()
				return
			}
			timer.Stop()
			continue
		}
		c.mu.Lock()
		c.queue = c.queue[1:]
		c.mu.Unlock()
		_, _ = c.PacketConn.WriteBatch([]session.Message{{Buf: next.buf, Addr: next.dst}})
	}
}

func (c *delayConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.PacketConn.Close()
}

// ccBottleneck runs one transfer of TestLabCCBottleneck, with the
// receivers' feedback delayed by delay.
//
// It fails t for everything but the two bounds a sender short of CPU can
// miss without the controller being at fault (the goodput's share of the
// link, and the rate as the data ended): those it returns as short, a
// description of each missed, and stalled says whether the sender stalled
// (see cpuStall).
func ccBottleneck(t *testing.T, l *lab.Lab, linkRate, start float64, delay time.Duration, port int) (short []string, stalled string) {
	const (
		size = 16 << 20
		// minShare is the goodput, as a share of the link, below which the
		// controller fails the test. Runs that found the link without
		// losing packets measured 0.88–0.90 idle and 0.81–0.88 with both
		// cores of the machine busy, under -race (see the log line
		// "goodput").
		minShare = 0.6
	)
	group := netip.MustParseAddrPort(fmt.Sprintf("239.255.10.1:%d", port))
	var rx []*session.Session
	for i, h := range l.Hosts[1:] {
		cfg := session.Config{Group: group, Seed: uint64(30 + i)}
		if delay > 0 {
			cfg.Interface = lab.Iface
			if err := h.Do(func() error {
				pc, err := session.Listen(cfg)
				if err != nil {
					return err
				}
				cfg.Conn = newDelayConn(pc, delay)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		rx = append(rx, open(t, h, cfg))
	}
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 3, DisableLoopback: true,
		Sender: sender.Config{Rate: start, CC: &congestion.Config{}}})
	data := pattern(size, byte(port))
	sent0, drops0, err := qdiscStats(l.Hosts[0])
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	defer cancel()
	begin := time.Now()
	// Sample the sender's state until the transfer ends (or ctx does).
	var (
		samples []ccSample
		stop    = make(chan struct{})
		sampled sync.WaitGroup
	)
	sampled.Add(1)
	go func() {
		defer sampled.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			st := tx.Stats().Sender
			samples = append(samples, ccSample{at: time.Since(begin), rate: st.Rate, clr: st.CLR,
				slowStart: st.SlowStart, feedback: st.CCFeedback, bytes: st.Bytes})
			select {
			case <-tick.C:
			case <-stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()

	if _, err := tx.SendBytes(ctx, data, []byte("cc")); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ok   bool
		err  error
		took time.Duration
	}
	results := make([]result, len(rx))
	var wg sync.WaitGroup
	for i, s := range rx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := s.Accept(ctx)
			if err == nil {
				err = o.Wait(ctx)
			}
			if err != nil {
				results[i] = result{err: err}
				return
			}
			results[i] = result{ok: bytes.Equal(o.Bytes(), data), took: time.Since(begin)}
		}()
	}
	wg.Wait()
	close(stop)
	sampled.Wait()
	final := tx.Stats()
	st := final.Sender

	// The trace first: if anything below fails, it is what explains it.
	t.Logf("sender rate over time:%s", ccTrace(samples))
	sent1, drops1, err := qdiscStats(l.Hosts[0])
	if err != nil {
		t.Error(err)
	}
	var slowest time.Duration
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("receiver %d: %v (sender %+v)", i, r.err, st)
		}
		if !r.ok {
			t.Fatalf("receiver %d: data differs", i)
		}
		slowest = max(slowest, r.took)
		rs := rx[i].Stats()
		t.Logf("receiver %d: done in %v, %d packets, %d duplicates, %d NACKs sent, %d suppressed",
			i, r.took.Round(time.Millisecond), rs.PacketsReceived, rs.Receiver.Duplicates, rs.NacksSent, rs.NacksSuppressed)
	}
	goodput := float64(size) * 8 / slowest.Seconds()
	share := goodput / linkRate
	// Every packet the sender sent went through the tbf; what it did not
	// pass, it dropped. (The tbf also passes the odd IGMP, MLD or ND
	// packet, hence "about".)
	passed := sent1 - sent0
	lost := max(int64(st.Packets)-int64(passed), 0)
	lo, hi, mean := rateSpread(samples, time.Second)
	t.Logf("goodput %.1f Mbit/s = %.2f of the %.0f Mbit/s link (%v); tbf passed %d packets of %d: about %d lost (%.2f %%) in %d drops; "+
		"sender: %d repairs (%.0f %% of packets), %d NACKs, %d probes, %d CC reports, CLR %08x, slow start %v, GRTT %v; "+
		"rate from 1 s on: %.1f–%.1f Mbit/s, mean %.1f; final rate %.1f Mbit/s",
		goodput/1e6, share, linkRate/1e6, slowest.Round(time.Millisecond), passed, st.Packets, lost,
		100*float64(lost)/float64(max(st.Packets, 1)), drops1-drops0,
		final.RepairsSent, 100*float64(final.RepairsSent)/float64(max(st.Packets, 1)), st.NacksReceived, st.Probes,
		st.CCFeedback, st.CLR, st.SlowStart, st.GRTT, lo*8/1e6, hi*8/1e6, mean*8/1e6, st.Rate*8/1e6)

	t.Logf("sender %+v", st)
	if st.CCFeedback == 0 {
		t.Error("the sender heard no congestion feedback")
	}
	if st.CLR == 0 {
		t.Error("the sender has no current limiting receiver")
	}
	if share < minShare {
		short = append(short, fmt.Sprintf("goodput %.1f Mbit/s is %.2f of the %.0f Mbit/s link, want at least %.2f",
			goodput/1e6, share, linkRate/1e6, minShare))
	}
	// Payload is less than what crosses the link (NORM, UDP, IP and
	// Ethernet headers), so the goodput cannot reach the link's rate
	// unless the bottleneck is not in the path.
	if share > 1 {
		t.Errorf("goodput %.1f Mbit/s exceeds the %.0f Mbit/s link: the bottleneck is not in the path",
			goodput/1e6, linkRate/1e6)
	}
	// After the data ends the rate may fall (receivers report what little
	// they now receive) but must not run away; while data flowed to the
	// end, it must have been near the link's.
	if r := st.Rate * 8; r > 2*linkRate {
		t.Errorf("final rate %.1f Mbit/s, want at most twice the %.0f Mbit/s link", r/1e6, linkRate/1e6)
	}
	if r := endOfDataRate(samples, linkRate/8/4) * 8; r < linkRate/2 || r > 2*linkRate {
		short = append(short, fmt.Sprintf("rate %.1f Mbit/s as the data ended, want within a factor of 2 of the %.0f Mbit/s link",
			r/1e6, linkRate/1e6))
	}
	return short, cpuStall(samples, 50*time.Millisecond)
}

// cpuStall describes the first time the test process itself was held off
// the CPU for four sampling intervals or more while the transfer ran (the
// sampler ticks every interval), or returns "". The machine's other tests
// do that to it (go test runs packages in parallel); the sender, in the
// same process, then stops too, and receivers that measure its rate over
// a round trip see it fall. In CI one such stall, of 430 ms, ended a run's
// slow start at 23 Mbit/s.
func cpuStall(samples []ccSample, interval time.Duration) string {
	for i := 1; i < len(samples); i++ {
		if gap := samples[i].at - samples[i-1].at; gap >= 4*interval {
			return fmt.Sprintf("the test process was off the CPU for %v at %.2fs", gap.Round(time.Millisecond), samples[i-1].at.Seconds())
		}
	}
	return ""
}

// endOfDataRate is the rate of the last sample over which the sender still
// sent at least busy bytes per second: the rate it reached with data to
// send, before it went idle.
func endOfDataRate(samples []ccSample, busy float64) float64 {
	for i := len(samples) - 1; i > 0; i-- {
		s, p := samples[i], samples[i-1]
		if d := (s.at - p.at).Seconds(); d > 0 && float64(s.bytes-p.bytes)/d >= busy {
			return s.rate
		}
	}
	return 0
}

// ccTrace formats samples, one line per 100 ms and per change of phase.
func ccTrace(samples []ccSample) string {
	var b strings.Builder
	var prev ccSample
	for i, s := range samples {
		if i > 0 && i%2 != 0 && s.slowStart == prev.slowStart && i != len(samples)-1 {
			continue
		}
		sent := "      "
		if dt := (s.at - prev.at).Seconds(); i > 0 && dt > 0 {
			sent = fmt.Sprintf("%6.1f", float64(s.bytes-prev.bytes)*8/dt/1e6)
		}
		fmt.Fprintf(&b, "\n  %6.2fs rate %6.1f Mbit/s, sent %s Mbit/s, CLR %08x, slow start %-5v, %d CC reports",
			s.at.Seconds(), s.rate*8/1e6, sent, s.clr, s.slowStart, s.feedback)
		prev = s
	}
	return b.String()
}

// rateSpread returns the least, greatest and time-weighted mean rate of
// the samples from time from on.
func rateSpread(samples []ccSample, from time.Duration) (lo, hi, mean float64) {
	var sum, span float64
	for i, s := range samples {
		if s.at < from || i == 0 {
			continue
		}
		if lo == 0 || s.rate < lo {
			lo = s.rate
		}
		hi = max(hi, s.rate)
		dt := (s.at - samples[i-1].at).Seconds()
		sum += samples[i-1].rate * dt
		span += dt
	}
	if span > 0 {
		mean = sum / span
	}
	return lo, hi, mean
}
