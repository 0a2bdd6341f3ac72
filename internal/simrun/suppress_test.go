package simrun

import (
	"testing"
	"time"

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
	receivers, size := 200, int64(1<<20)
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
