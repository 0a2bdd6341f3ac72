package congestion

import (
	"math"
	"time"
)

// Equation is the TCP-friendly rate of RFC 5740 §5.5.3 (TFRC's throughput
// equation, RFC 5348 §3.1, with t_RTO = 4·RTT and one packet per ACK): the
// bytes per second a TCP flow with segments of size bytes would get over a
// path with round-trip time rtt and loss event rate p. It returns +Inf for
// p = 0 (no loss: the equation sets no limit) and 0 for a non-positive rtt
// or size.
func Equation(size float64, rtt time.Duration, p float64) float64 {
	r := rtt.Seconds()
	if size <= 0 || r <= 0 || math.IsNaN(p) {
		return 0
	}
	if p <= 0 {
		return math.Inf(1)
	}
	p = math.Min(p, 1)
	den := r*math.Sqrt(2*p/3) + 4*r*(3*math.Sqrt(3*p/8))*p*(1+32*p*p)
	return size / den
}

// LossForRate inverts Equation: the loss event rate at which a flow with
// segments of size bytes and round-trip time rtt gets rate bytes per second.
// TFRC seeds a receiver's first loss interval with it (RFC 5348 §6.3.1), so
// the rate after the first loss continues from the rate measured before it
// instead of jumping. It returns 1 when even total loss allows more than
// rate, and a tiny positive value for an unbounded rate.
func LossForRate(size float64, rtt time.Duration, rate float64) float64 {
	lo, hi := 1e-9, 1.0
	if !(rate > 0) || Equation(size, rtt, hi) >= rate {
		return hi
	}
	if Equation(size, rtt, lo) <= rate {
		return lo
	}
	// Equation falls monotonically in p; bisect on a log scale, since the
	// answer spans orders of magnitude.
	for range 60 {
		mid := math.Sqrt(lo * hi)
		if Equation(size, rtt, mid) > rate {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Sqrt(lo * hi)
}
