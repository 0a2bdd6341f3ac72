package session

import "math/rand/v2"

// lossState decides injected losses, reproducibly for a seed.
type lossState struct {
	cfg Loss
	rng *rand.Rand
	bad bool // Gilbert-Elliott state
}

func newLoss(cfg Loss, seed uint64, stream uint64) *lossState {
	if cfg.Rate <= 0 {
		return nil
	}
	return &lossState{cfg: cfg, rng: rand.New(rand.NewPCG(seed, stream))}
}

// drop reports whether the next packet is lost. With bursts, the bad state
// loses everything and lasts BurstLen packets on average; the good state
// loses nothing, and the chance of entering the bad state is set so that
// the long-run loss is Rate.
func (l *lossState) drop() bool {
	if l == nil {
		return false
	}
	if l.cfg.BurstLen <= 1 {
		return l.rng.Float64() < l.cfg.Rate
	}
	exit := 1 / l.cfg.BurstLen
	if l.bad {
		if l.rng.Float64() < exit {
			l.bad = false
		}
	} else if l.rng.Float64() < exit*l.cfg.Rate/(1-l.cfg.Rate) {
		l.bad = true
	}
	return l.bad
}
