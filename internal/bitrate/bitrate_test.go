package bitrate

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]float64{"1.5G": 1.5e9, "100M": 1e8, "800k": 8e5, "64K": 64e3, "12000": 12000} {
		if v, err := Parse(in); err != nil || v != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, v, err, want)
		}
	}
	for _, in := range []string{"", "fast", "0", "-5M", "NaN", "Inf", "M", "1e300G"} {
		if v, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, v)
		}
	}
}
