package nack

import (
	"math"
	"math/bits"
	"time"
)

// groupBits is the size of a GroupCounter's bitmaps: 512 bytes each, which
// counts up to a few tens of thousands of receivers to within a few
// percent (linear counting saturates near groupBits·ln(groupBits)).
const groupBits = 4096

// GroupCounter estimates how many distinct receivers a sender has heard
// from (NACKs and ACKs, by source id) over the last one to two epochs, in
// fixed memory and without allocating: each id sets one bit of a bitmap
// (linear counting), and the bitmap of the epoch before is kept so that the
// count never drops to zero at an epoch boundary. The zero value is ready
// to use with an epoch of one second; see SetEpoch.
//
// Receivers that say nothing (suppressed, receive-only) are not counted:
// the estimate is a lower bound of the group, and GroupBackoff treats it so.
// Not safe for concurrent use.
type GroupCounter struct {
	epoch    time.Duration
	start    time.Time
	started  bool
	dirty    bool
	estimate float64
	cur      [groupBits / 64]uint64
	prev     [groupBits / 64]uint64
}

// SetEpoch sets how long an epoch lasts (default 1 s): ids heard in the
// current and the previous epoch are counted.
func (g *GroupCounter) SetEpoch(d time.Duration) { g.epoch = d }

func (g *GroupCounter) rotate(now time.Time) {
	if g.epoch <= 0 {
		g.epoch = time.Second
	}
	if !g.started {
		g.start, g.started, g.dirty = now, true, true
		return
	}
	el := now.Sub(g.start)
	if el < g.epoch {
		return
	}
	n := el / g.epoch
	if n == 1 {
		g.prev = g.cur
	} else {
		clear(g.prev[:])
	}
	clear(g.cur[:])
	g.start = g.start.Add(n * g.epoch)
	g.dirty = true
}

// Add records that receiver id was heard at now.
func (g *GroupCounter) Add(now time.Time, id uint32) {
	g.rotate(now)
	// Linear counting assumes ids land on random bits: a full mix (the
	// splitmix64 finalizer) makes the ids of one subnet look random too.
	h := uint64(id) + 0x9E3779B97F4A7C15
	h = (h ^ h>>30) * 0xBF58476D1CE4E5B9
	h = (h ^ h>>27) * 0x94D049BB133111EB
	h = (h ^ h>>31) % groupBits
	w, b := h>>6, uint64(1)<<(h&63)
	if g.cur[w]&b == 0 {
		g.cur[w] |= b
		g.dirty = true
	}
}

// Estimate returns the number of distinct receivers heard in the current
// and previous epoch.
func (g *GroupCounter) Estimate(now time.Time) float64 {
	g.rotate(now)
	if g.dirty {
		g.dirty = false
		ones := 0
		for i := range g.cur {
			ones += bits.OnesCount64(g.cur[i] | g.prev[i])
		}
		m := float64(groupBits)
		if ones == groupBits {
			g.estimate = m * math.Log(m)
		} else {
			g.estimate = -m * math.Log(1-float64(ones)/m)
		}
	}
	return g.estimate
}

// GroupBackoff returns the NACK back-off factor a sender advertises when it
// has heard from about heard distinct receivers recently, given the factor
// it uses for a large group.
//
// The back-off exists to let receivers suppress each other's NACKs; with a
// handful of receivers there is little to suppress and the back-off only
// delays every repair cycle (the sender's aggregation window and the
// receivers' hold-off grow with it too). So the factor grows with the
// logarithm of the group, as the benefit of suppression does: ⌊log2
// heard⌋, at least 2 and at most maxBackoff (2 for up to seven receivers,
// 3 up to fifteen, 4 from sixteen on, by default). Below 2 a NACK has
// hardly left before the others fire, and NRL's libnorm 1.5.9 receivers
// failed to complete a stream under loss with a factor of 1 (interop
// TestShoalToLibnorm). With nothing heard it returns maxBackoff: a group
// not heard yet may be large.
func GroupBackoff(heard float64, maxBackoff int) int {
	const minBackoff = 2
	if !(heard >= 0.5) { // nothing heard (also catches NaN)
		return maxBackoff
	}
	if heard >= 1<<15 {
		return maxBackoff
	}
	return max(min(maxBackoff, bits.Len(uint(math.Round(heard)))-1), min(minBackoff, maxBackoff), 0)
}
