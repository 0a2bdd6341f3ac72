// Package congestion decides how fast a Shoal sender may transmit: a token
// bucket pacer for fixed rates (this file) and, later, NORM-CC (RFC 5740
// §5.5). The sender engine asks the pacer before every packet; the pacer
// never sleeps or reads the clock itself, so it works in virtual time too.
package congestion

import (
	"math"
	"time"
)

// Pacer is a token bucket that spreads packets evenly at a rate, while
// letting a burst of up to Burst bytes go at once so the I/O layer can write
// packets in batches (sendmmsg, GSO) without changing the average rate.
// The zero Pacer has no rate and lets nothing through; set Rate first.
type Pacer struct {
	rate   float64 // bytes per second
	burst  float64 // bucket depth in bytes
	tokens float64
	last   time.Time
}

// DefaultBurstPackets is the batch a pacer lets out at once when no burst is
// given: enough to fill one sendmmsg call, small enough to keep switch queues
// short.
const DefaultBurstPackets = 16

// NewPacer returns a pacer at rate bytes per second with a bucket of burst
// bytes (0: DefaultBurstPackets packets of mtu bytes). The bucket starts full.
func NewPacer(rate float64, burst, mtu int) *Pacer {
	p := &Pacer{}
	if burst <= 0 {
		burst = DefaultBurstPackets * mtu
	}
	p.burst = float64(burst)
	p.SetRate(rate)
	p.tokens = p.burst
	return p
}

// SetRate changes the rate (bytes per second) from now on.
func (p *Pacer) SetRate(rate float64) {
	if rate < 0 || math.IsNaN(rate) {
		rate = 0
	}
	p.rate = rate
}

// SetBurst changes the bucket depth (bytes).
func (p *Pacer) SetBurst(burst int) {
	p.burst = float64(max(burst, 1))
	p.tokens = math.Min(p.tokens, p.burst)
}

// Burst returns the bucket depth in bytes.
func (p *Pacer) Burst() int { return int(p.burst) }

// Rate returns the current rate in bytes per second.
func (p *Pacer) Rate() float64 { return p.rate }

func (p *Pacer) refill(now time.Time) {
	if p.last.IsZero() {
		p.last = now
		return
	}
	if dt := now.Sub(p.last); dt > 0 {
		p.tokens = math.Min(p.burst, p.tokens+dt.Seconds()*p.rate)
		p.last = now
	}
}

// Allow reports whether a packet of n bytes may go at now, and if so takes
// its tokens. A packet larger than the bucket goes when the bucket is full.
func (p *Pacer) Allow(now time.Time, n int) bool {
	p.refill(now)
	need := math.Min(float64(n), p.burst)
	if p.tokens < need {
		return false
	}
	p.tokens -= float64(n)
	return true
}

// Take charges n bytes already sent (or about to be) to the bucket, which
// may go into debt: the packets after them wait until it is repaid. Use it
// for packets that must not wait, such as timing probes.
func (p *Pacer) Take(now time.Time, n int) {
	p.refill(now)
	p.tokens -= float64(n)
}

// Next returns when a packet of n bytes will be allowed (now if already).
func (p *Pacer) Next(now time.Time, n int) time.Time {
	p.refill(now)
	need := math.Min(float64(n), p.burst) - p.tokens
	if need <= 0 {
		return now
	}
	if p.rate <= 0 {
		return now.Add(time.Hour)
	}
	// Round up so the wake-up is never a nanosecond early, which would cost
	// a wasted poll.
	return now.Add(time.Duration(math.Ceil(need / p.rate * 1e9)))
}
