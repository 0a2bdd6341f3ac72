package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// runCCLab sends one file under NORM-CC from a lab host whose link tc tbf
// limits (lab.SetRate: 64 KB burst, 50 ms queue) to receivers on other
// hosts, and prints the sender's rate every 100 ms to stderr and one line
// to stdout:
//
//	cclab: receivers=N size=S link_mbps=B goodput_mbps=G utilization=G/B queue_loss=L repair_overhead=R final_rate_mbps=F
//
// where G is the file's bits over the time until the last receiver had it
// verified, L the share of the sender's packets the tbf dropped, R repair
// packets over packets lost, and F the sender's rate at the end.
func runCCLab(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench cclab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		size      int64 = 16 << 20
		receivers       = fs.Int("receivers", 2, "number of receiver hosts")
		link            = fs.Float64("link", 50, "the sender's link rate in Mbit/s (tc tbf)")
		start           = fs.Float64("start", 0, "start rate in Mbit/s (0: the controller's default)")
		noGSO           = fs.Bool("nogso", false, "send without UDP GSO (the tbf then drops single packets, not batches)")
		timeout         = fs.Duration("timeout", 2*time.Minute, "give up after this long")
	)
	fs.Var(sizeFlag{&size}, "size", "file size, e.g. 64MiB")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *receivers < 1 || !(*link > 0) || *start < 0 {
		fmt.Fprintln(stderr, "bench cclab: need -receivers ≥ 1, -link > 0 and -start ≥ 0")
		return 2
	}
	if why := lab.Available(); why != "" {
		fmt.Fprintf(stderr, "bench cclab: %s\n", why)
		return 1
	}
	l, done, err := openLab(*receivers + 1)
	defer done()
	if err == nil {
		err = l.Hosts[0].SetRate(fmt.Sprintf("%gmbit", *link))
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench cclab: %v\n", err)
		return 1
	}
	res, err := ccTransfer(l, size, *start*1e6/8, !*noGSO, *timeout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench cclab: %v\n", err)
		return 1
	}
	goodput := float64(size) * 8 / res.took.Seconds() / 1e6
	overhead := 0.0
	if res.lost > 0 {
		overhead = float64(res.repairs) / float64(res.lost)
	}
	fmt.Fprintf(stdout, "cclab: receivers=%d size=%s link_mbps=%g goodput_mbps=%.1f utilization=%.2f queue_loss=%.4f repair_overhead=%.1f final_rate_mbps=%.1f\n",
		*receivers, sizeName(size), *link, goodput, goodput / *link,
		float64(res.lost)/float64(max(res.packets, 1)), overhead, res.rate*8/1e6)
	return 0
}

type ccResult struct {
	took             time.Duration
	packets, lost    uint64
	repairs          uint64
	rate             float64 // bytes/s at the end
	finished, failed int
}

// ccTransfer runs the sessions in this process, each inside its host.
func ccTransfer(l *lab.Lab, size int64, start float64, gso bool, timeout time.Duration, stderr io.Writer) (ccResult, error) {
	group := netip.MustParseAddrPort("239.255.11.1:7200")
	var sessions []*session.Session
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, s := range sessions {
			_ = s.Shutdown(ctx)
		}
	}()
	open := func(h *lab.Host, cfg session.Config) (*session.Session, error) {
		cfg.Interface = lab.Iface
		var s *session.Session
		err := h.Do(func() (err error) { s, err = session.New(cfg); return err })
		if err == nil {
			sessions = append(sessions, s)
		}
		return s, err
	}
	var rx []*session.Session
	var sinks []*simrun.VerifySink
	for i, h := range l.Hosts[1:] {
		sink := simrun.NewVerifySink(1, 0, size)
		s, err := open(h, session.Config{Group: group, Seed: uint64(100 + i),
			FileSink: func(session.ObjectInfo) (io.WriterAt, error) { return sink, nil }})
		if err != nil {
			return ccResult{}, fmt.Errorf("%s: %w", h.Name, err)
		}
		rx, sinks = append(rx, s), append(sinks, sink)
	}
	tx, err := open(l.Hosts[0], session.Config{Group: group, Seed: 1, DisableLoopback: true, DisableGSO: !gso,
		Sender: sender.Config{Rate: start, CC: &congestion.Config{}}})
	if err != nil {
		return ccResult{}, fmt.Errorf("sender: %w", err)
	}
	sent0, _, err := tbfCounters(l.Hosts[0])
	if err != nil {
		return ccResult{}, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	begin := time.Now()
	if _, err := tx.SendFile(ctx, simrun.PatternReader(1, 0, size), size, []byte("cclab.bin")); err != nil {
		return ccResult{}, err
	}
	done := make(chan error, len(rx))
	for _, s := range rx {
		go func() {
			o, err := s.Accept(ctx)
			if err == nil {
				err = o.Wait(ctx)
			}
			done <- err
		}()
	}
	var res ccResult
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var prevBytes uint64
	prevAt := time.Duration(0)
	for res.finished+res.failed < len(rx) {
		select {
		case err := <-done:
			if err != nil {
				res.failed++
				fmt.Fprintf(stderr, "bench cclab: a receiver failed: %v\n", err)
			} else {
				res.finished++
			}
		case <-tick.C:
			st := tx.Stats().Sender
			at := time.Since(begin)
			fmt.Fprintf(stderr, "cclab: %6.2fs rate %6.1f Mbit/s sent %6.1f Mbit/s CLR %08x slow start %-5v CC reports %d GRTT %v\n",
				at.Seconds(), st.Rate*8/1e6, float64(st.Bytes-prevBytes)*8/(at-prevAt).Seconds()/1e6,
				st.CLR, st.SlowStart, st.CCFeedback, st.GRTT)
			prevBytes, prevAt = st.Bytes, at
		}
	}
	res.took = time.Since(begin)
	if res.failed > 0 {
		return res, fmt.Errorf("%d of %d receivers failed", res.failed, len(rx))
	}
	for i, sink := range sinks {
		if err := sink.Result(); err != nil {
			return res, fmt.Errorf("receiver %d: %w", i, err)
		}
	}
	st := tx.Stats()
	sent1, drops, err := tbfCounters(l.Hosts[0])
	if err != nil {
		return res, err
	}
	res.packets, res.repairs, res.rate = st.Sender.Packets, st.RepairsSent, st.Sender.Rate
	// The tbf also passes the odd IGMP, MLD or ND packet: this is about.
	if passed := sent1 - sent0; res.packets > passed {
		res.lost = res.packets - passed
	}
	fmt.Fprintf(stderr, "bench cclab: sender %d packets, %d repairs, %d NACKs, %d probes, %d CC reports; tbf %d drops (a GSO batch is one)\n",
		st.Sender.Packets, st.RepairsSent, st.NacksReceived, st.Sender.Probes, st.Sender.CCFeedback, drops)
	return res, nil
}

var tbfStats = regexp.MustCompile(`Sent \d+ bytes (\d+) pkt \(dropped (\d+)`)

// tbfCounters reads the packets the host's root qdisc sent and its drops.
func tbfCounters(h *lab.Host) (sent, drops uint64, err error) {
	out, err := h.Exec("tc", "-s", "qdisc", "show", "dev", lab.Iface)
	if err != nil {
		return 0, 0, fmt.Errorf("tc -s qdisc: %v\n%s", err, out)
	}
	m := tbfStats.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, errors.New("no qdisc counters in: " + out)
	}
	sent, _ = strconv.ParseUint(m[1], 10, 64)
	drops, _ = strconv.ParseUint(m[2], 10, 64)
	return sent, drops, nil
}
