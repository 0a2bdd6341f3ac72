// Command bench measures Shoal. Subcommands:
//
//	bench sim  [flags]   one transfer through the simulated network (no root, no network)
//	bench lab  [flags]   a transfer between network namespaces (root), against a raw UDP blast
//	bench filecast [flags]  filecast against UFTP and libnorm in the same namespaces (root; peers optional)
//	bench cclab [flags]  one NORM-CC transfer through a tc tbf bottleneck in the namespaces (root)
//	bench stream [flags] one stream written with io.Copy through the namespaces (root)
//	bench sweep -out DIR [-quick] [-lab]  a grid of sim (and lab) runs: DIR/sweep.csv and plots
//
// sweep ends with exactly one line:
//
//	sweep: runs=N csv=DIR/sweep.csv plots=nacks_vs_receivers,goodput_vs_loss,time_vs_receivers[,lab_goodput_vs_loss]
//
// It runs a grid of bench sim transfers (seed -seed, default 1) and writes
// every run as a row of DIR/sweep.csv and the plots as DIR/NAME.png and
// DIR/NAME.svg, each titled with the command that made it:
// NACKs per lossy block against receivers (10 to 10,000; 1% loss and 0.5%
// shared loss, 4 MiB) with Shoal's exponential timers and, up to 1,000
// receivers, uniform ones, next to the theory's expected NACKs for one loss
// event (back-off window 4 GRTT, NACKs reaching the others in 1/8 of it);
// goodput against loss (0 to 30 %, 100 receivers, 4 MiB), independent and
// in bursts of 4; and time to complete against receivers. -quick stops at
// 1,000 receivers (uniform timers at 300) and 1 MiB files, with 20
// receivers for goodput. -lab adds goodput against loss for filecast, UFTP
// and libnorm from bench filecast runs (root). On a terminal a progress
// bar shows the grid's progress; otherwise a line per run.
//
// stream ends with exactly one line, and exits non-zero if a byte was lost:
//
//	stream: receivers=N size=S loss=P goodput_mbps=G lost_bytes=L writer_blocked_s=B
//
// where G is the stream's bits over the time until the last receiver read
// its end, L the bytes any receiver lost (missing, or all of a stream whose
// SHA-256 differs), and B how long the writer was held back by flow
// control. The writer makes plain 8 KiB writes and no Flush, at -rate
// (default 1000 Mbit/s), with default session settings.
//
// filecast ends with exactly one line:
//
//	filecast: receivers=N size=S loss=P [burst=B] [cc=on] goodput_mbps=G uftp_mbps=U libnorm_mbps=L ratio=R sender_exit_after_s=X rx_cpu_s_per_gib=C uftp_rx_cpu_s_per_gib=D
//
// It sends one random file of S bytes from one host to N with each of
// filecast (examples/filecast, send --ack auto), UFTP (uftp/uftpd: 4 MiB
// buffers, 1400-byte blocks, no encryption, a closed group) and libnorm
// (the interop peer, NACK back-off 0), each in -rounds rounds (default 3)
// in rotating order, all at the same fixed -rate (default 1 Gbit/s) or,
// with -cc, each with its own congestion control (filecast --cc, uftp -C
// tfmcc, NORM-CC). Loss is per datagram, on every receiver's incoming UDP.
// A run's time is from the sender's start until the last receiver prints
// that it holds the whole file; the file is then checked by SHA-256.
// G, U and L are the file's bits over the median time (a failed run counts
// as endless; 0 if half the runs failed; "-" for a peer not installed).
// R = G / max(U, L). X is the median time from the last receiver's
// completion to the filecast sender's exit. C and D are the median CPU
// seconds (user+system) the filecast receivers, and the uftpd receivers,
// spent per GiB each received: their summed CPU over N×S.
//
// lab ends with exactly one line:
//
//	lab: receivers=N size=S loss=P [burst=B] goodput_mbps=G raw_udp_mbps=R ratio=G/R sender_cpu_s_per_gib=C
//
// sim ends with exactly one line:
//
//	sim: receivers=N delivered=D/N nacks_per_lossy_block=X repair_overhead=Y virtual_s=T wall_s=W peak_rss_mb=M
//
// sim -hostile KIND ends instead with the line of runSimHostile (hostile.go).
//
// sim -cc ends instead with exactly one line:
//
//	cc: bottleneck_mbps=B goodput_mbps=G utilization=G/B queue_loss=L time_to_90pct_s=T fairness=J [reference=R]
//
// where G is the file bits of all flows over the time until the last
// receiver had every file, L the fraction of packets the bottleneck queues
// dropped, T the time until receiver 0's link first carried 90 % of B over
// 100 ms, and J Jain's index of the flows' throughputs while all were
// sending (1 for one flow). R (one flow only) is for reference the
// utilization of an ideal sender that starts as TCP does: it sends the file
// (headers not counted) at the start rate for one round trip, as there is
// no feedback before, then doubles its rate every round trip until it is at
// B, without loss or queue, and its last packet arrives half a round trip
// after it left. Where G/B is far below R, the controller loses time after
// its start; where R itself is low, the file is too short for a TCP-like
// start from -start-rate to reach the link's rate in time. (G/B may pass R
// a little: the controller's first reports can raise the rate faster than
// twice per round trip.)
//
// sim -cc -sweep-rtt 10ms,40ms,80ms,200ms -sweep-bottleneck 10Mbit,1Gbit
// runs that grid instead, one line per point (the cc: line prefixed with
// rtt_ms= and size_mib=), and ends with
//
//	cc sweep: points=N min_utilization=U min_fairness=J
//
// -line-time D sizes each file to last D at the bottleneck rate (overriding
// -size), so that slow start weighs the same at every rate: from the
// 1 Mbit/s default start rate it takes ten round trips to reach 1 Gbit/s,
// which on a 64 MiB file at a 200 ms round trip is more than the file's
// time at the link's rate.
//
// where a lossy block is a block that at least one receiver missed a symbol
// of, X = NACK messages sent by all receivers / lossy blocks, and Y = repair
// symbols sent / Σ over lossy blocks of the largest number of symbols any one
// receiver missed in it, and M the process's peak resident memory in MiB.
// With -burst B, each receiver's link loses -loss of its packets in bursts of
// mean length B (Gilbert-Elliott); bench lab and bench filecast take -burst
// too, and drop in bursts with nftables (see internal/lab SetBurstLoss).
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: bench sim|lab [flags]   (bench sim -h, bench lab -h for flags)")
		return 2
	}
	switch args[0] {
	case "sim":
		return runSim(args[1:], stdout, stderr)
	case "lab":
		return runLab(args[1:], stdout, stderr)
	case "filecast":
		return runFilecast(args[1:], stdout, stderr)
	case "cclab":
		return runCCLab(args[1:], stdout, stderr)
	case "stream":
		return runStream(args[1:], stdout, stderr)
	case "rtp":
		return runRTP(args[1:], stdout, stderr)
	case "sweep":
		return runSweep(args[1:], stdout, stderr)
	case "lab-rx": // helpers run by "bench lab" inside its hosts
		return labRx(args[1:], stdout)
	case "lab-rawrx":
		return labRawRx(args[1:], stdout)
	default:
		fmt.Fprintf(stderr, "bench: unknown subcommand %q\n", args[0])
		return 2
	}
}

// parseSize reads sizes like 16MiB, 64KiB, 1.5GB or 1000.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * mult), nil
}

// parsePercent reads "1%", "0.5%" or a fraction like "0.01".
func parsePercent(s string) (float64, error) {
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v < 0 || v > 100 {
			return 0, fmt.Errorf("bad percentage %q", s)
		}
		return v / 100, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || v > 1 {
		return 0, fmt.Errorf("bad loss %q (use 1%% or 0.01)", s)
	}
	return v, nil
}

type sizeFlag struct{ v *int64 }

func (f sizeFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.FormatInt(*f.v, 10)
}
func (f sizeFlag) Set(s string) (err error) { *f.v, err = parseSize(s); return }

type pctFlag struct{ v *float64 }

func (f pctFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.FormatFloat(*f.v*100, 'g', -1, 64) + "%"
}
func (f pctFlag) Set(s string) (err error) { *f.v, err = parsePercent(s); return }

func runSim(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		size         int64 = 16 << 20
		loss, shared float64
		receivers    = fs.Int("receivers", 10, "number of receivers")
		seed         = fs.Uint64("seed", 1, "random seed (the same seed gives the same run)")
		rate         = fs.Float64("rate", 100e6, "sender rate in bytes per second")
		parity       = fs.Int("parity", 16, "parity symbols per block available for repair (0: resend source symbols)")
		autoParity   = fs.Int("auto-parity", 0, "parity symbols per block sent proactively")
		block        = fs.Int("block", 64, "source symbols per block")
		segment      = fs.Int("segment", 1400, "segment size in bytes")
		delay        = fs.Duration("delay", 5*time.Millisecond, "one-way delay of each link")
		limit        = fs.Duration("limit", 30*time.Minute, "virtual time limit")
		groupSize    = fs.Float64("group-size", 0, "group size estimate the sender advertises (0: the number of receivers)")
		backoff      = fs.Int("backoff", 0, "NACK back-off factor (0: 4, negative: none)")
		adaptive     = fs.Bool("adaptive-backoff", false, "back-off factor follows the receivers heard (-backoff is its maximum)")
		cpuProfile   = fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
		memProfile   = fs.String("memprofile", "", "write an allocation profile of the run to this file")
	)
	fs.Var(sizeFlag{&size}, "size", "object size, e.g. 16MiB")
	fs.Var(pctFlag{&loss}, "loss", "independent loss on each receiver's link, e.g. 1%")
	fs.Var(pctFlag{&shared}, "shared-loss", "loss on the sender's link, seen by every receiver, e.g. 0.5%")
	burst := fs.Float64("burst", 0, "with -loss: each receiver's link loses packets in bursts of this mean length (Gilbert-Elliott), not independently")
	var bottleneck int64 = 50e6
	cc := fs.Bool("cc", false, "congestion control run: flows through a bottleneck (see -bottleneck, -rtt, -flows)")
	flows := fs.Int("flows", 1, "with -cc: competing senders, each sending -size to every receiver")
	rtt := fs.Duration("rtt", 20*time.Millisecond, "with -cc: base round-trip time")
	queue := fs.Int("queue", 0, "with -cc: bottleneck queue in bytes (0: one bandwidth-delay product, at least 32 KiB)")
	stagger := fs.Duration("stagger", 0, "with -cc: start flow i at i times this")
	var startRate int64
	fs.Var(bitsFlag{&startRate}, "start-rate", "with -cc: the rate before any feedback, e.g. 10Mbit (default: congestion.Config's, 1 Mbit/s)")
	tolerate := fs.Bool("tolerate-loss", false, "with -cc: receivers treat isolated losses as random, not congestion")
	hostile := fs.String("hostile", "", "run a hostile node beside the transfer and compare with a clean run: nack-range, nack-storm, fake-senders, big-objects, stream-leak or squelch")
	fs.Var(bitsFlag{&bottleneck}, "bottleneck", "with -cc: bottleneck rate of each receiver's link, e.g. 50Mbit")
	sweepRTTs := fs.String("sweep-rtt", "", "with -cc: run a grid over these round trips instead of -rtt, e.g. 10ms,40ms,80ms,200ms")
	sweepRates := fs.String("sweep-bottleneck", "", "with -cc: run a grid over these bottlenecks instead of -bottleneck, e.g. 10Mbit,100Mbit,1Gbit")
	lineTime := fs.Duration("line-time", 0, "with -cc: size each file to take this long at the bottleneck rate, overriding -size (so that slow start weighs the same at every rate)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cc {
		sc := simrun.CCScenario{Seed: *seed, Flows: *flows, Stagger: *stagger, Receivers: *receivers, Size: size,
			Bottleneck: bottleneck, RTT: *rtt, QueueBytes: *queue, Loss: loss, Limit: *limit,
			Sender: sender.Config{Rate: float64(startRate) / 8, Parity: *parity, AutoParity: *autoParity, BlockLen: *block,
				SegmentSize: *segment},
			Receiver: receiver.Config{TolerateLoss: *tolerate}}
		if *sweepRTTs != "" || *sweepRates != "" {
			return runSimCCSweep(sc, *sweepRTTs, *sweepRates, *lineTime, stdout, stderr)
		}
		if *lineTime > 0 {
			sc.Size = int64(float64(sc.Bottleneck) / 8 * lineTime.Seconds())
		}
		return runSimCC(sc, stdout, stderr)
	}
	if *receivers < 1 || size < 0 {
		fmt.Fprintln(stderr, "bench sim: need at least one receiver and a size >= 0")
		return 2
	}
	if *groupSize == 0 {
		*groupSize = float64(*receivers)
	}
	if *burst < 0 || *burst > 0 && *burst < 1 {
		fmt.Fprintln(stderr, "bench sim: -burst is a mean burst length of at least 1 packet")
		return 2
	}
	sc := simrun.Scenario{
		Seed: *seed, Receivers: *receivers, Loss: loss, Shared: shared, Delay: *delay, Limit: *limit,
		Objects: []simrun.Object{{Size: size, File: true, Info: []byte("bench.bin")}},
		Sender: sender.Config{Rate: *rate, Parity: *parity, AutoParity: *autoParity, BlockLen: *block, SegmentSize: *segment,
			GroupSize: *groupSize, Backoff: *backoff, AdaptiveBackoff: *adaptive},
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Ten thousand receivers hold about 2 GB; the garbage collector's
		// default doubling of the live heap would take the process past
		// 4 GiB. A soft limit makes it collect more often instead.
		debug.SetMemoryLimit(3 << 30)
	}
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		fmt.Fprintf(stderr, "bench sim: %v\n", err)
		return 1
	}
	if *burst > 1 && loss > 0 {
		ge := simnet.Bursty(loss, *burst)
		sc.Burst = &ge
	}
	if *hostile != "" {
		sc.Hostile = simrun.HostileKind(*hostile)
		return runSimHostile(sc, stdout, stderr)
	}
	start := time.Now()
	res, err := simrun.Run(sc)
	wall := time.Since(start)
	if perr := stopProfiles(); perr != nil {
		fmt.Fprintf(stderr, "bench sim: %v\n", perr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench sim: %v\n", err)
		return 1
	}
	for _, e := range res.Errors {
		fmt.Fprintf(stderr, "bench sim: %s\n", e)
	}
	x, y := 0.0, 0.0
	if res.LossyBlocks > 0 {
		x = float64(res.NacksSent) / float64(res.LossyBlocks)
		y = float64(res.RepairSymbols) / float64(res.MaxMissedSum)
	}
	suppressed := uint64(0)
	for _, r := range res.Receivers {
		suppressed += r.NacksSuppressed
	}
	fmt.Fprintf(stderr, "bench sim: nacks_suppressed=%d\n", suppressed)
	fmt.Fprintf(stderr, "bench sim: stop=%v lossy_blocks=%d nacks=%d repair_symbols=%d max_missed_sum=%d repair_rounds=%d grtt=%v sender=%+v\n",
		res.Stop, res.LossyBlocks, res.NacksSent, res.RepairSymbols, res.MaxMissedSum, res.RepairRounds, res.Sender.GRTT, res.Sender)
	if res.LossyBlocks > 0 {
		fmt.Fprintf(stderr, "bench sim: repair_rounds_per_lossy_block=%.2f\n", float64(res.RepairRounds)/float64(res.LossyBlocks))
	}
	fmt.Fprintf(stdout, "sim: receivers=%d delivered=%d/%d nacks_per_lossy_block=%.2f repair_overhead=%.2f virtual_s=%.2f wall_s=%.2f peak_rss_mb=%.0f\n",
		*receivers, res.Delivered, *receivers, x, y, res.Virtual.Seconds(), wall.Seconds(), peakRSSMiB())
	if res.Delivered != *receivers {
		return 1
	}
	return 0
}

// bitsFlag reads rates like 50Mbit, 1Gbit, 800kbit or 1e6 (bits per second).
type bitsFlag struct{ v *int64 }

func (f bitsFlag) String() string {
	if f.v == nil {
		return ""
	}
	return strconv.FormatInt(*f.v, 10)
}

func (f bitsFlag) Set(s string) error {
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"Gbit", 1e9}, {"Mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !(v*mult >= 1) {
		return fmt.Errorf("bad rate %q (use 50Mbit, 1Gbit, 800kbit)", s)
	}
	*f.v = int64(v * mult)
	return nil
}

// runSimCCSweep runs sc over a grid of round trips and bottlenecks (either
// list may be empty: then sc's value alone) and prints one cc: line per
// point, prefixed with its round trip, and a last line with the worst
// utilization and fairness.
func runSimCCSweep(sc simrun.CCScenario, rtts, rates string, lineTime time.Duration, stdout, stderr io.Writer) int {
	rttList := []time.Duration{sc.RTT}
	if rtts != "" {
		rttList = rttList[:0]
		for _, f := range strings.Split(rtts, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d <= 0 {
				fmt.Fprintf(stderr, "bench sim: bad round trip %q in -sweep-rtt\n", f)
				return 2
			}
			rttList = append(rttList, d)
		}
	}
	rateList := []int64{sc.Bottleneck}
	if rates != "" {
		rateList = rateList[:0]
		for _, f := range strings.Split(rates, ",") {
			var b int64
			if err := (bitsFlag{&b}).Set(strings.TrimSpace(f)); err != nil {
				fmt.Fprintf(stderr, "bench sim: %v in -sweep-bottleneck\n", err)
				return 2
			}
			rateList = append(rateList, b)
		}
	}
	worstU, worstJ, rc := math.Inf(1), math.Inf(1), 0
	for _, b := range rateList {
		for _, rtt := range rttList {
			p := sc
			p.Bottleneck, p.RTT, p.QueueBytes = b, rtt, sc.QueueBytes
			if lineTime > 0 {
				p.Size = int64(float64(b) / 8 * lineTime.Seconds())
			}
			fmt.Fprintf(stdout, "rtt_ms=%g size_mib=%.0f ", rtt.Seconds()*1000, float64(p.Size)/(1<<20))
			u, j, code := simCC(p, stdout, io.Discard)
			worstU, worstJ = min(worstU, u), min(worstJ, j)
			rc = max(rc, code)
		}
	}
	fmt.Fprintf(stdout, "cc sweep: points=%d min_utilization=%.3f min_fairness=%.3f\n", len(rateList)*len(rttList), worstU, worstJ)
	return rc
}

func runSimCC(sc simrun.CCScenario, stdout, stderr io.Writer) int {
	_, _, code := simCC(sc, stdout, stderr)
	return code
}

// simCC runs one CC scenario, prints its cc: line and returns its
// utilization, fairness and exit code.
func simCC(sc simrun.CCScenario, stdout, stderr io.Writer) (float64, float64, int) {
	if sc.Receivers < 1 || sc.Size < 1 || sc.Flows < 1 {
		fmt.Fprintln(stderr, "bench sim -cc: need receivers, flows and a size")
		return 0, 0, 2
	}
	start := time.Now()
	res, err := simrun.RunCC(sc)
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintf(stderr, "bench sim: %v\n", err)
		return 0, 0, 1
	}
	for _, e := range res.Errors {
		fmt.Fprintf(stderr, "bench sim: %s\n", e)
	}
	for f, st := range res.Senders {
		fmt.Fprintf(stderr, "bench sim: flow %d goodput_mbps=%.1f final_rate_mbps=%.1f grtt=%v cc_feedback=%d repairs=%d\n",
			f, res.Goodput[f]/1e6, st.Rate*8/1e6, st.GRTT, st.CCFeedback, st.RepairSource+st.RepairParity)
	}
	fmt.Fprintf(stderr, "bench sim: delivered=%d/%d virtual_s=%.2f wall_s=%.2f\n", res.Delivered, res.Pairs, res.Virtual.Seconds(), wall.Seconds())
	g := 0.0
	if res.Virtual > 0 {
		g = float64(int64(len(res.Goodput))*sc.Size*8) / res.Virtual.Seconds()
	}
	b := float64(sc.Bottleneck)
	ref := ""
	if sc.Flows == 1 {
		start := sc.Sender.Rate
		if start <= 0 {
			start = congestion.DefaultStartRate
		}
		t := slowStartTime(float64(sc.Size), start, b/8, sc.RTT)
		ref = fmt.Sprintf(" reference=%.3f", float64(sc.Size*8)/t.Seconds()/b)
	}
	fmt.Fprintf(stdout, "cc: bottleneck_mbps=%.1f goodput_mbps=%.1f utilization=%.3f queue_loss=%.4f time_to_90pct_s=%.2f fairness=%.3f%s\n",
		b/1e6, g/1e6, g/b, res.QueueLoss, res.TimeTo90.Seconds(), res.Fairness, ref)
	if res.Delivered != res.Pairs {
		return g / b, res.Fairness, 1
	}
	return g / b, res.Fairness, 0
}

// slowStartTime is how long an ideal sender takes to deliver n bytes over a
// link of link bytes per second with round trip rtt: at start bytes per
// second for one round trip, then doubling every round trip up to link,
// and the last byte arriving half a round trip after it left.
func slowStartTime(n, start, link float64, rtt time.Duration) time.Duration {
	r := rtt.Seconds()
	start = min(start, link)
	var t float64
	switch first, ramp := start*r, (link-start)*r/math.Ln2; {
	case n <= first:
		t = n / start
	case n <= first+ramp:
		t = r + r*math.Log2(1+(n-first)*math.Ln2/(start*r))
	default:
		t = r + r*math.Log2(link/start) + (n-first-ramp)/link
	}
	return time.Duration((t + r/2) * float64(time.Second))
}
