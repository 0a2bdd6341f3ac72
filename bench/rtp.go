package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// runRTP measures RTP-like media over a deadline-bounded message stream
// in the simulated network: a constant-bitrate source writes the packets
// of each video frame (30 to a frame, 30 frames a second) as messages of a
// stream with the latency budget as its maximum age at both ends, timed
// FEC blocks and proactive parity, to receivers behind random loss. It
// prints one line: the share of messages delivered within the budget, the
// source symbols rebuilt by FEC and those that a NACK repair brought, the
// messages lost, the 99th percentile of the latency the transport added
// (beyond the path's own delay) and the repair overhead (symbols sent
// beyond the data, per data symbol: parity, padding and repairs).
func runRTP(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench rtp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		loss             = 0.05
		rateBits   int64 = 4e6
		receivers        = fs.Int("receivers", 10, "number of receivers")
		seed             = fs.Uint64("seed", 1, "random seed (the same seed gives the same run)")
		rtt              = fs.Duration("rtt", 20*time.Millisecond, "round-trip time between the sender and each receiver")
		latency          = fs.Duration("latency", 200*time.Millisecond, "latency budget: maximum age and playout deadline")
		duration         = fs.Duration("duration", 60*time.Second, "media duration (virtual time)")
		autoParity       = fs.Int("auto-parity", 5, "proactive parity symbols per block of 16")
		blockTime        = fs.Duration("block-time", 0, "close FEC blocks after this long (0: a tenth of the latency)")
		backoff          = fs.Int("backoff", 0, "NACK back-off factor (RFC 5740; 4 is the file-transfer default, 0 NACKs at once)")
	)
	fs.Var(pctFlag{&loss}, "loss", "random loss on every receiver's link, e.g. 5%")
	fs.Var(bitsFlag{&rateBits}, "rate", "media bit rate, e.g. 4Mbit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rate := float64(rateBits)
	if *receivers < 1 || *latency <= 0 || *duration <= 0 || *autoParity < 0 || *autoParity > 16 {
		fmt.Fprintln(stderr, "bench rtp: need receivers, a positive latency and duration, and auto parity of 0 to 16")
		return 2
	}
	bo := *backoff
	if bo == 0 {
		bo = -1 // sender.Config's zero value means its default
	}
	if *blockTime == 0 {
		*blockTime = *latency / 10
	}
	const fps, perFrame = 30, 30
	frames := int(duration.Seconds() * fps)
	msgLen := max(int(rate/8/(fps*perFrame)), 12)
	n := frames * perFrame

	// NACK-repaired source symbols: a receiver gets a source symbol for the
	// first time after another receiver had it (its first pass was lost).
	type key struct {
		obj   uint16
		block uint32
		sym   uint16
	}
	firstAt := map[key]time.Time{}
	got := make([]map[key]bool, *receivers)
	for i := range got {
		got[i] = map[key]bool{}
	}
	nackRecovered := 0
	var d framing.Data
	sc := simrun.Scenario{Seed: *seed, Receivers: *receivers, Loss: loss, Delay: *rtt / 4,
		Stream: &simrun.Stream{Messages: n, Len: msgLen, Burst: perFrame, Interval: time.Second / fps, Mode: sender.FlushPassive,
			Buffer: max(int(rate/8*latency.Seconds())*4, 1<<20), Framed: true, MaxAge: *latency, BlockTime: *blockTime},
		// One message to a segment: parity symbols are segment-sized.
		Sender: sender.Config{Rate: 3 * rate / 8, BlockLen: 16, SegmentSize: msgLen + framing.MsgHeaderLen, Parity: max(*autoParity, 4), AutoParity: *autoParity, Backoff: bo,
			GRTT: max(*rtt, time.Millisecond)},
		Receiver: receiver.Config{StreamMaxAge: *latency},
		Limit:    *duration + 30*time.Second,
		Tap: func(rx int, p simnet.Packet) {
			if h, _, err := framing.Peek(p.Payload); err != nil || h.Type != framing.TypeData || d.Unmarshal(p.Payload) != nil {
				return
			}
			if int(d.PayloadID.Symbol) >= 16 {
				return // parity
			}
			k := key{d.ObjectID, d.PayloadID.Block, d.PayloadID.Symbol}
			if got[rx][k] {
				return
			}
			got[rx][k] = true
			if t, ok := firstAt[k]; !ok {
				firstAt[k] = p.At
			} else if p.At.Sub(t) > *rtt/2 {
				nackRecovered++
			}
		},
	}
	res, err := simrun.Run(sc)
	if err != nil {
		fmt.Fprintf(stderr, "bench rtp: %v\n", err)
		return 1
	}
	total := uint64(n) * uint64(*receivers)
	var delivered, onTime, fec uint64
	budget := int(*latency / time.Millisecond)
	for ms, c := range res.MsgDelays {
		delivered += c
		if ms <= budget {
			onTime += c
		}
	}
	for _, r := range res.Receivers {
		fec += r.FECRecovered
	}
	// Added latency: beyond the fastest delivery (the path's own delay).
	base, p99 := -1, 0
	var seen uint64
	for ms, c := range res.MsgDelays {
		if c > 0 && base < 0 {
			base = ms
		}
		seen += c
		if seen >= (delivered*99+99)/100 {
			p99 = ms
			break
		}
	}
	tx := res.Sender
	overhead := 0.0
	if tx.DataSymbols > 0 {
		overhead = float64(tx.AutoParity+tx.RepairSource+tx.RepairParity+tx.PaddingSegments) / float64(tx.DataSymbols)
	}
	fmt.Fprintf(stderr, "bench rtp: %d messages of %d bytes to %d receivers, %d delivered, stop %v; sender %+v\n",
		n, msgLen, *receivers, delivered, res.Stop, tx)
	fmt.Fprintf(stdout, "rtp: loss=%s rtt=%v latency=%v on_time=%.4f fec_recovered=%d nack_recovered=%d lost=%d p99_added_ms=%d repair_overhead=%.3f\n",
		pctFlag{&loss}, *rtt, *latency, float64(onTime)/float64(total), fec, nackRecovered, total-delivered, max(p99-base, 0), overhead)
	return 0
}
