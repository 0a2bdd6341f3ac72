package framing_test

import (
	"math"
	"testing"
	"time"

	"github.com/shoalnet/shoal/framing"
)

func TestRTTQuantizer(t *testing.T) {
	prev := time.Duration(0)
	for q := 0; q < 256; q++ {
		d := framing.UnquantizeRTT(uint8(q))
		if d <= prev {
			t.Fatalf("UnquantizeRTT not increasing at %d: %v <= %v", q, d, prev)
		}
		prev = d
	}
	if lo, hi := framing.UnquantizeRTT(0), framing.UnquantizeRTT(255); lo != time.Microsecond || hi != 1000*time.Second {
		t.Fatalf("range %v..%v, want 1µs..1000s", lo, hi)
	}
	for _, d := range []time.Duration{time.Microsecond, 20 * time.Microsecond, 33 * time.Microsecond, 40 * time.Microsecond,
		time.Millisecond, 25 * time.Millisecond, 500 * time.Millisecond, 10 * time.Second, 999 * time.Second} {
		q := framing.QuantizeRTT(d)
		back := framing.UnquantizeRTT(q)
		if back < d-time.Nanosecond || float64(back) > float64(d)*1.09 {
			t.Errorf("RTT %v -> %d -> %v: want at least %v and within 9%%", d, q, back, d)
		}
	}
	if framing.QuantizeRTT(0) != 0 || framing.QuantizeRTT(time.Hour) != 255 || framing.QuantizeRTT(-time.Second) != 0 {
		t.Error("out-of-range RTTs are not clamped")
	}
	// The reference capture's NACK carried cc_rtt 0x94: about 0.267 s.
	if d := framing.UnquantizeRTT(0x94); d < 266*time.Millisecond || d > 268*time.Millisecond {
		t.Errorf("UnquantizeRTT(0x94) = %v, want about 267ms", d)
	}
}

func TestGroupSizeQuantizer(t *testing.T) {
	cases := []struct {
		n    float64
		q    uint8
		back float64
	}{
		{1, 0x0, 10}, {10, 0x0, 10}, {11, 0x8, 50}, {50, 0x8, 50}, {51, 0x1, 100},
		{1000, 0x2, 1000}, {1001, 0xa, 5000}, {5e8, 0xf, 5e8}, {1e12, 0xf, 5e8},
	}
	for _, c := range cases {
		q := framing.QuantizeGroupSize(c.n)
		if q != c.q || framing.UnquantizeGroupSize(q) != c.back {
			t.Errorf("group size %v -> %#x (%v), want %#x (%v)", c.n, q, framing.UnquantizeGroupSize(q), c.q, c.back)
		}
	}
}

func TestBackoffQuantizer(t *testing.T) {
	for in, want := range map[int]uint8{-1: 0, 0: 0, 4: 4, 15: 15, 16: 15} {
		if got := framing.QuantizeBackoff(in); got != want {
			t.Errorf("QuantizeBackoff(%d) = %d, want %d", in, got, want)
		}
	}
}

func TestLossQuantizer(t *testing.T) {
	for in, want := range map[float64]uint16{-1: 0, 0: 0, 0.5: 32768, 1: 65535, 2: 65535, math.NaN(): 65535} {
		if got := framing.QuantizeLoss(in); got != want {
			t.Errorf("QuantizeLoss(%v) = %d, want %d", in, got, want)
		}
	}
	for _, p := range []float64{1e-9, 1e-6, 0.01, 0.3} {
		if got := framing.UnquantizeLoss32(framing.QuantizeLoss32(p)); math.Abs(got-p) > 1e-9 {
			t.Errorf("Loss32 %v -> %v", p, got)
		}
	}
	if framing.QuantizeLoss32(1e-7) == 0 {
		t.Error("32-bit loss lost a 1e-7 loss rate")
	}
}

func TestRateQuantizer(t *testing.T) {
	// The reference capture's EXT_RATE 0x23d3: one 1400-byte segment a second.
	if r := framing.UnquantizeRate(0x23d3); math.Abs(r-1398.9) > 0.1 {
		t.Errorf("UnquantizeRate(0x23d3) = %v, want about 1398.9", r)
	}
	if framing.UnquantizeRate(framing.QuantizeRate(0)) != 0 || framing.UnquantizeRate(framing.QuantizeRate(-5)) != 0 {
		t.Error("zero rate does not encode as zero")
	}
	for r := 1.0; r < 1e15; r *= 1.37 {
		back := framing.UnquantizeRate(framing.QuantizeRate(r))
		if math.Abs(back-r)/r > 0.0025 {
			t.Fatalf("rate %v -> %v: error over 0.25%%", r, back)
		}
	}
	// Just below a decade, rounding must carry into the exponent instead
	// of wrapping the 12-bit mantissa.
	if back := framing.UnquantizeRate(framing.QuantizeRate(9999.9)); math.Abs(back-10000) > 10 {
		t.Errorf("rate 9999.9 -> %v", back)
	}
}
