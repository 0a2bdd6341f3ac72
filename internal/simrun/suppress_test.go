package simrun

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/fec"
	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/sender"
)

// nackBurst runs sc and returns the result and the largest number of NACKs
// receiver 0 heard within any one window of width w: NACKs that close
// together were sent before any of them could suppress the others.
func nackBurst(t *testing.T, sc Scenario, w time.Duration) (Result, int) {
	t.Helper()
	var times []time.Time
	sc.Tap = func(rx int, p simnet.Packet) {
		if rx == 0 && len(p.Payload) > 0 && framing.Type(p.Payload[0]&0x0f) == framing.TypeNack {
			times = append(times, p.At)
		}
	}
	res := run(t, sc)
	worst := 0
	for i, j := 0, 0; j < len(times); j++ {
		for times[j].Sub(times[i]) >= w {
			i++
		}
		worst = max(worst, j-i+1)
	}
	return res, worst
}

// TestSuppressionThroughGRTTDrop is a reduced `bench sim --receivers 1000
// --loss 1% --shared-loss 0.5%`. Receivers start their NACK back-off at
// the first loss, sized with the sender's initial GRTT guess (500 ms); the
// first measured GRTT, a hundredth of that, reaches them all in the same
// probe. Shortening each back-off in proportion used to end nearly all of
// them at that instant, and every receiver NACKed at once (seed 7 of the
// bench: 5.58 NACKs per lossy block, a thousand-odd NACKs in one burst).
// The back-offs must stay spread, and the bench's bounds must hold: at
// most 5 NACKs per lossy block and 1.1 repair symbols per symbol the worst
// receiver missed.
func TestSuppressionThroughGRTTDrop(t *testing.T) {
	receivers, size := 200, int64(2<<20)
	if raceEnabled || testing.Short() {
		receivers, size = 60, 256<<10
	}
	for _, seed := range []uint64{1, 7} {
		res, burst := nackBurst(t, Scenario{Seed: seed, Receivers: receivers, Loss: 0.01, Shared: 0.005,
			Objects: []Object{{Size: size, File: true, Info: []byte("bench.bin")}},
			Sender:  sender.Config{Rate: 100e6, Parity: 16}}, 10*time.Millisecond)
		x := float64(res.NacksSent) / float64(res.LossyBlocks)
		y := float64(res.RepairSymbols) / float64(res.MaxMissedSum)
		t.Logf("seed %d: %d receivers, %d lossy blocks, %d NACKs (%.2f per lossy block), overhead %.2f, at most %d NACKs within 10 ms",
			seed, receivers, res.LossyBlocks, res.NacksSent, x, y, burst)
		if burst > receivers/5 {
			t.Errorf("seed %d: %d of %d receivers NACKed within 10 ms of each other: back-offs collapsed", seed, burst, receivers)
		}
		if res.NacksSent > receivers/2 {
			t.Errorf("seed %d: %d NACKs from %d receivers: suppression is not working", seed, res.NacksSent, receivers)
		}
		if receivers >= 200 && x > 5 {
			t.Errorf("seed %d: %.2f NACKs per lossy block, want at most 5", seed, x)
		}
		if y > 1.1 {
			t.Errorf("seed %d: repair overhead %.2f, want at most 1.1", seed, y)
		}
	}
}

// repairDelay runs sc and returns the mean, over every block a receiver
// lost symbols of, of the time from the last symbol of its first pass that
// reached the receiver to the symbol that completed the block: how long a
// loss waits for its repair.
func repairDelay(t *testing.T, sc Scenario) (Result, time.Duration) {
	t.Helper()
	type key struct {
		rx    int
		obj   uint16
		block uint32
	}
	type state struct {
		syms       map[uint16]bool
		lastFirst  time.Time
		done       time.Time
		k          int
		firstCount int
	}
	blocks := map[key]*state{}
	var d framing.Data
	sc.Tap = func(rx int, p simnet.Packet) {
		if len(p.Payload) == 0 || framing.Type(p.Payload[0]&0x0f) != framing.TypeData || d.Unmarshal(p.Payload) != nil {
			return
		}
		f, ok, err := d.Ext.FTI(d.FECID)
		if !ok || err != nil {
			return
		}
		part, err := fec.NewPartition(f.TransferLength, int(f.SymbolLength), int(f.MaxBlockLen))
		if err != nil {
			return
		}
		kk := key{rx, d.ObjectID, d.PayloadID.Block}
		b := blocks[kk]
		if b == nil {
			b = &state{syms: map[uint16]bool{}, k: part.BlockLen(int(d.PayloadID.Block))}
			blocks[kk] = b
		}
		if int(d.PayloadID.Symbol) < b.k && !b.syms[d.PayloadID.Symbol] {
			b.lastFirst = p.At
			b.firstCount++
		}
		b.syms[d.PayloadID.Symbol] = true
		if b.done.IsZero() && len(b.syms) >= b.k {
			b.done = p.At
		}
	}
	res := run(t, sc)
	var sum time.Duration
	n := 0
	for _, b := range blocks {
		if b.firstCount < b.k && !b.done.IsZero() {
			sum += b.done.Sub(b.lastFirst)
			n++
		}
	}
	if n == 0 {
		t.Fatal("no block needed repair")
	}
	return res, sum / time.Duration(n)
}

// TestSmallGroupRepairCycle: with three receivers there is next to nothing
// to suppress, and timers sized for a thousand (back-off 4, the default)
// only delay every repair. With AdaptiveBackoff the factor follows the
// group heard (2 for three receivers) and repairs come sooner.
func TestSmallGroupRepairCycle(t *testing.T) {
	sc := Scenario{Seed: 5, Receivers: 3, Loss: 0.10,
		Objects: []Object{{Size: 4 << 20, File: true}},
		// A GRTT guess close to the path's, so that the repair cycles, not
		// the first measurement of the GRTT, set the pace.
		Sender: sender.Config{Rate: 20e6, Parity: 16, GRTT: 20 * time.Millisecond, AdaptiveBackoff: true}}
	adaptive, dAdaptive := repairDelay(t, sc)
	sc.Sender.AdaptiveBackoff = false
	fixed, dFixed := repairDelay(t, sc)
	t.Logf("mean repair delay %v with adaptive timers (done at %v, %d NACKs), %v with back-off 4 (done at %v, %d NACKs)",
		dAdaptive, adaptive.Virtual, adaptive.NacksSent, dFixed, fixed.Virtual, fixed.NacksSent)
	if dAdaptive >= dFixed*4/5 {
		t.Errorf("mean repair delay %v with adaptive timers, %v without: want a fifth shorter at least", dAdaptive, dFixed)
	}
}

// TestProbeAnswersSuppressed: a sender without congestion control probes
// only for the GRTT, and answers to its probes suppress each other like
// NACKs. Every receiver used to answer every probe (each within a tenth of
// a round trip, as the rate bias for a limiting receiver would have it), a
// load growing with the square of the group, since answers are multicast.
// Then an answer was suppressed only by one with a lower rate, so every
// receiver below those heard so far answered too: 15-332 answers on seeds
// 1-60 (113, 101 and 187 on seeds 2, 5 and 6), where one within a tenth of
// the lowest now suppresses (3-32).
func TestProbeAnswersSuppressed(t *testing.T) {
	const receivers = 150
	for _, seed := range []uint64{2, 5, 6} {
		res := run(t, Scenario{Seed: seed, Receivers: receivers, Loss: 0.01, Shared: 0.005,
			Objects: []Object{{Size: 1 << 20, File: true}}, Sender: sender.Config{Rate: 100e6, Parity: 16, GroupSize: receivers}})
		t.Logf("seed %d, %d receivers: %d ACKs, %d probes", seed, receivers, res.Sender.AcksReceived, res.Sender.Probes)
		if res.Sender.AcksReceived > 8*res.Sender.Probes {
			t.Errorf("seed %d: %d ACKs from %d receivers for %d probes: probe answers are not suppressed",
				seed, res.Sender.AcksReceived, receivers, res.Sender.Probes)
		}
	}
}

// TestSuppressionManyBlocks: a NACK cycle spans many blocks (`bench sim
// --receivers 200 --size 8MiB --loss 2% --shared-loss 0.5%`), and a
// receiver keeps quiet only if the NACKs it overheard cover it in every
// one of them: most receivers miss more of some block than anyone asked
// for so far. Receivers time their back-off as one of those that miss as
// much as they do (nack.BackoffGroup), so those few NACK first and their
// NACKs cover the rest; and a count of parity symbols covers whoever
// needs no more, whichever ids it named. Timed as one of the whole group,
// with ids compared, seeds 1-3 averaged 1.99 NACKs per lossy block; 1.75
// then, 1.61 since the sender's repairs carry a margin against their own
// loss. That margin is parity the receivers did not ask for, more of it at
// 2 % loss than at the bench's 1 %: repair overhead up to 1.15 here (1.09-1.13;
// 1.05-1.06 without), while the bench's 1.1 holds at 1 %
// (TestSuppressionThroughGRTTDrop, and bench sim at 1,000 and 10,000).
func TestSuppressionManyBlocks(t *testing.T) {
	receivers, size, seeds := 200, int64(8<<20), []uint64{1, 2, 3}
	if raceEnabled || testing.Short() {
		receivers, size, seeds = 40, 1<<20, []uint64{1}
	}
	sum := 0.0
	for _, seed := range seeds {
		res := run(t, Scenario{Seed: seed, Receivers: receivers, Loss: 0.02, Shared: 0.005,
			Objects: []Object{{Size: size, File: true, Info: []byte("bench.bin")}},
			Sender:  sender.Config{Rate: 100e6, Parity: 16, GroupSize: float64(receivers)}})
		x := float64(res.NacksSent) / float64(res.LossyBlocks)
		y := float64(res.RepairSymbols) / float64(res.MaxMissedSum)
		t.Logf("seed %d: %d lossy blocks, %d NACKs (%.2f per lossy block), overhead %.2f", seed, res.LossyBlocks, res.NacksSent, x, y)
		if y > 1.15 {
			t.Errorf("seed %d: repair overhead %.2f, want at most 1.15", seed, y)
		}
		sum += x
	}
	if mean := sum / float64(len(seeds)); receivers == 200 && mean > 1.85 {
		t.Errorf("%.2f NACKs per lossy block over seeds %v, want at most 1.85", mean, seeds)
	}
}
