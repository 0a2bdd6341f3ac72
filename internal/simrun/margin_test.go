package simrun

import (
	"testing"

	"github.com/shoalnet/shoal/sender"
)

// TestRepairMarginRounds: a sender that answers a block's repair request
// with exactly the count asked for leaves short every receiver that then
// loses one of the repair symbols it counted on, and each such block costs
// another repair round; the more receivers, the more of them need all or
// nearly all of the repairs. Sized at 3 % loss, where a count answered
// plainly took 1.42 rounds per lossy block (seeds 1-3); with a margin sized
// from the group and the loss the counts show, 1.04-1.08 (1.04-1.12 before
// receivers started their repair cycles together). The margin must stay
// cheap: repair overhead at most 1.25 here (1.14-1.15; 1.06-1.07 without
// it), and at most 1.1 at the bench's 1 % (TestSuppressionThroughGRTTDrop).
func TestRepairMarginRounds(t *testing.T) {
	sc := Scenario{Receivers: 200, Loss: 0.03, Shared: 0.005,
		Objects: []Object{{Size: 2 << 20, File: true, Info: []byte("bench.bin")}},
		Sender:  sender.Config{Rate: 100e6, Parity: 16, GroupSize: 200}}
	r := roundsOverSeeds(t, sc, func(seed uint64, res *Result) {
		if y := float64(res.RepairSymbols) / float64(res.MaxMissedSum); y > 1.25 {
			t.Errorf("seed %d: repair overhead %.2f, want at most 1.25", seed, y)
		}
	})
	if r > 1.2 {
		t.Errorf("%.3f repair rounds per lossy block, want at most 1.2: lost repairs cost rounds", r)
	}
}

// TestRepairCyclesTogether: receivers start their next repair cycle when
// the sender's answer to the last one has arrived, all at about the same
// time, so the cycle's NACKs fall into one of the sender's aggregation
// windows. From each receiver's own hold-off timer the cycles started
// spread over a back-off window, NACKs came after the sender had planned
// its repairs, and the blocks they asked more for took a repair round
// more: 1.23 rounds per lossy block here over seeds 1-3 (seed 3: 1.30,
// done in 0.79 s of virtual time), for 1.11 now (0.46-0.51 s).
func TestRepairCyclesTogether(t *testing.T) {
	sc := Scenario{Receivers: 300, Loss: 0.01, Shared: 0.005,
		Objects: []Object{{Size: 8 << 20, File: true, Info: []byte("bench.bin")}},
		Sender:  sender.Config{Rate: 100e6, Parity: 16, GroupSize: 300}}
	if r := roundsOverSeeds(t, sc, nil); r > 1.15 {
		t.Errorf("%.3f repair rounds per lossy block, want at most 1.15: late NACKs cost rounds", r)
	}
}

// roundsOverSeeds runs sc with seeds 1-3 (1 under the race detector),
// logs each run, hands it to check if not nil, and returns the repair
// rounds per lossy block over all of them.
func roundsOverSeeds(t *testing.T, sc Scenario, check func(seed uint64, res *Result)) float64 {
	t.Helper()
	seeds := []uint64{1, 2, 3}
	if raceEnabled {
		seeds = seeds[:1]
	}
	rounds, lossy := 0, 0
	for _, seed := range seeds {
		sc.Seed = seed
		res := run(t, sc)
		t.Logf("seed %d: %d lossy blocks, %.3f repair rounds per lossy block, overhead %.3f, %.2f NACKs per lossy block, done in %v",
			seed, res.LossyBlocks, float64(res.RepairRounds)/float64(res.LossyBlocks),
			float64(res.RepairSymbols)/float64(res.MaxMissedSum), float64(res.NacksSent)/float64(res.LossyBlocks), res.Virtual)
		if check != nil {
			check(seed, &res)
		}
		rounds += res.RepairRounds
		lossy += res.LossyBlocks
	}
	return float64(rounds) / float64(lossy)
}
