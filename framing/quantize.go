package framing

import (
	"math"
	"time"
)

// RTT quantization (RFC 5740 §4.2, "grtt" and "cc_rtt"): one byte covers
// 1 µs to 1000 s, linear in microseconds below about 33 µs and logarithmic
// above, so relative precision is roughly 8 % everywhere.
const (
	rttMin = 1e-6
	rttMax = 1000.0
)

// QuantizeRTT encodes a round-trip time for the grtt and cc_rtt fields.
// Values outside 1 µs – 1000 s are clamped. The result never decodes to less
// than rtt (within the quantizer's range), so advertising it errs on the side
// of longer back-off rather than a NACK implosion.
func QuantizeRTT(rtt time.Duration) uint8 {
	s := rtt.Seconds()
	switch {
	case s > rttMax:
		s = rttMax
	case s < rttMin:
		s = rttMin
	}
	if s < 3.3e-5 {
		return uint8(math.Ceil(s*1e6-1e-9)) - 1
	}
	q := math.Ceil(255 - 13*math.Log(rttMax/s))
	if q > 255 {
		q = 255
	}
	return uint8(q)
}

// UnquantizeRTT decodes a grtt or cc_rtt field.
func UnquantizeRTT(q uint8) time.Duration { return rttTable[q] }

// rttTable and gsizeTable hold every decoded value: receivers decode the
// fields of every packet, and math.Exp and math.Pow per packet were a
// measurable part of a thousand-receiver simulation.
var (
	rttTable   [256]time.Duration
	gsizeTable [16]float64
)

func init() {
	for q := range rttTable {
		rttTable[q] = unquantizeRTT(uint8(q))
	}
	for q := range gsizeTable {
		gsizeTable[q] = unquantizeGroupSize(uint8(q))
	}
}

func unquantizeRTT(q uint8) time.Duration {
	var s float64
	if q < 31 {
		s = float64(q+1) * 1e-6
	} else {
		s = rttMax / math.Exp(float64(255-int(q))/13)
	}
	return time.Duration(s * float64(time.Second))
}

// QuantizeGroupSize encodes a group size estimate in the 4-bit gsize field:
// a mantissa of 1 or 5 (high bit) times 10^(exponent+1) (low 3 bits), from
// 10 to 5·10^8. It returns the smallest representable size not below n, as
// overestimating the group only lengthens NACK back-off, while
// underestimating it weakens suppression.
func QuantizeGroupSize(n float64) uint8 {
	for e := uint8(0); e < 8; e++ {
		p := math.Pow(10, float64(e+1))
		if n <= p {
			return e
		}
		if n <= 5*p {
			return 0x8 | e
		}
	}
	return 0xf
}

// UnquantizeGroupSize decodes a gsize field.
func UnquantizeGroupSize(q uint8) float64 { return gsizeTable[q&0xf] }

func unquantizeGroupSize(q uint8) float64 {
	m := 1.0
	if q&0x8 != 0 {
		m = 5
	}
	return m * math.Pow(10, float64(q&0x7)+1)
}

// QuantizeBackoff clamps a back-off factor to the 4-bit backoff field. RFC
// 5740 carries it unscaled; 4 is its default for multicast and 0 suits
// unicast or tiny groups.
func QuantizeBackoff(k int) uint8 {
	if k < 0 {
		return 0
	}
	if k > 15 {
		return 15
	}
	return uint8(k)
}

// QuantizeLoss encodes a loss fraction (0..1) in the 16-bit cc_loss field.
func QuantizeLoss(p float64) uint16 {
	v := math.Round(math.Max(p, 0) * 65535)
	if v > 65535 || math.IsNaN(v) {
		v = 65535
	}
	return uint16(v)
}

// UnquantizeLoss decodes a cc_loss field.
func UnquantizeLoss(q uint16) float64 { return float64(q) / 65535 }

// QuantizeLoss32 encodes a loss fraction with the 32-bit precision that
// low-loss, high-rate paths need. The reference implementation sends the high
// 16 bits in cc_loss and the low 16 bits in the reserved field after cc_rate
// (see CCFeedback.LossExt); receivers that only read cc_loss still get a
// valid 16-bit estimate.
func QuantizeLoss32(p float64) uint32 {
	v := math.Round(math.Max(p, 0) * math.MaxUint32)
	if v > math.MaxUint32 || math.IsNaN(v) {
		v = math.MaxUint32
	}
	return uint32(v)
}

// UnquantizeLoss32 decodes a 32-bit loss fraction.
func UnquantizeLoss32(q uint32) float64 { return float64(q) / math.MaxUint32 }

// QuantizeRate encodes a rate in bytes per second in the 16-bit form of
// cc_rate and EXT_RATE: a 12-bit mantissa m and a 4-bit exponent e standing
// for (m·10/4096)·10^e. Zero and negative rates encode as zero.
func QuantizeRate(bytesPerSec float64) uint16 {
	if !(bytesPerSec > 0) {
		return 0x0001 // mantissa 0: rate zero, the reference's encoding
	}
	e := math.Floor(math.Log10(bytesPerSec))
	if e < 0 {
		e = 0
	}
	if e > 15 {
		return 0xfff0 | 15
	}
	m := math.Round(409.6 * bytesPerSec / math.Pow(10, e))
	if m > 4095 {
		// Rounding carried into the next decade; the reference's
		// arithmetic would wrap the 12-bit mantissa here.
		if e == 15 {
			return 0xfff0 | 15
		}
		e++
		m = math.Round(409.6 * bytesPerSec / math.Pow(10, e))
	}
	return uint16(m)<<4 | uint16(e)
}

// UnquantizeRate decodes a cc_rate or EXT_RATE field to bytes per second.
func UnquantizeRate(q uint16) float64 {
	return float64(q>>4) * (10.0 / 4096) * math.Pow(10, float64(q&0xf))
}
