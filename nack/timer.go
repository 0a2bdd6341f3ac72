package nack

import (
	"math"
	"time"
)

// BackoffDelay returns how long a receiver waits before sending a NACK: a
// draw from the truncated exponential distribution of RFC 5401 §2.1
// ("RandomBackoff"), which RFC 5740 §5.3 prescribes with maxDelay =
// K_sender × GRTT_sender and the sender's advertised group size.
//
// u is a uniform draw from [0, 1) supplied by the caller's seeded random
// source, which keeps the engines deterministic. maxDelay is the backoff
// factor times the GRTT; zero or negative gives 0 (the reference
// implementation sends at once when the backoff factor is 0 or the session
// is unicast). groupSize is the sender's group size estimate; values below 1
// count as 1.
//
// The delay has density proportional to exp(λt/T) on [0, T], T = maxDelay,
// λ = ln(groupSize) + 1, so late delays are the likely ones and only a few
// of many receivers fire early enough to suppress the rest. Its CDF is
// F(t) = (exp(λt/T) - 1) / (exp(λ) - 1), and the result is F⁻¹(u).
func BackoffDelay(u float64, maxDelay time.Duration, groupSize float64) time.Duration {
	if maxDelay <= 0 {
		return 0
	}
	if !(u > 0) { // also catches NaN
		return 0
	}
	if u >= 1 {
		return maxDelay
	}
	if !(groupSize > 1) { // also catches NaN
		groupSize = 1
	}
	lambda := math.Log(groupSize) + 1
	// F⁻¹(u) = T/λ · ln(1 + u(e^λ - 1)) overflows for large groups; taking
	// e^λ out of the logarithm gives T + T/λ · ln(u + (1-u)e^-λ), which
	// does not.
	x := 1 + math.Log(u+(1-u)*math.Exp(-lambda))/lambda
	t := time.Duration(x * float64(maxDelay))
	return min(max(t, 0), maxDelay)
}

// NackHoldoff returns how long a receiver waits after its NACK back-off
// ends (whether it sent the NACK or was suppressed) before it starts a new
// repair cycle for the same sender: (backoff + 2) × grtt, RFC 5740 §5.3.
// That is the longest other receivers may still be backing off
// (backoff × GRTT), one GRTT for the NACK to reach the sender and the
// sender's aggregation to end, and one for the repairs to arrive; NACKing
// earlier would ask again for repairs already on their way. The reference
// implementation uses the same interval for multicast sessions (for unicast
// it uses GRTT plus one packet interval). A negative backoff counts as 0.
func NackHoldoff(grtt time.Duration, backoff float64) time.Duration {
	return scale(grtt, max(backoff, 0)+2)
}

// AggregationWindow returns how long a sender collects NACKs after the
// first one of a repair cycle before it starts to send repairs:
// (backoff + 1) × grtt, RFC 5740 §5.4. Receivers' back-off timers spread
// their NACKs over backoff × GRTT and the NACKs take up to one more GRTT to
// arrive, so a sender that waits this long answers every receiver of the
// cycle with one set of repairs. The reference implementation uses the same
// window for multicast sessions and none for unicast. A negative backoff
// counts as 0.
func AggregationWindow(grtt time.Duration, backoff float64) time.Duration {
	return scale(grtt, max(backoff, 0)+1)
}

func scale(d time.Duration, f float64) time.Duration {
	if d <= 0 {
		return 0
	}
	x := float64(d) * f
	if x >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(x)
}
