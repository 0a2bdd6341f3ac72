package congestion

import "time"

// PaceTarget is how long packets may wait in a receiver's socket before
// the receiver asks the sender to slow down (Shoal's pace reports, see
// framing.Pace). Below it a backlog is scheduling noise; far above it,
// repairs and everything timed by them queue behind the backlog, and the
// socket buffer overflows into loss.
const PaceTarget = 10 * time.Millisecond

// PaceRate is the rate to send at for a receiver that reports handling
// rate bytes per second while packets wait delay in its socket: a little
// below what it handles, and further below the longer the wait, so that
// the backlog drains within about 100 ms. It never returns less than
// floor.
func PaceRate(rate float64, delay time.Duration, floor float64) float64 {
	drain := float64(delay-PaceTarget) / float64(100*time.Millisecond)
	return max(rate*min(0.95, max(0.5, 1-drain)), floor)
}
