// Package bitrate reads the bit rates the command-line tools take.
package bitrate

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse reads a bit rate such as 100M, 1.5G or 800k, in bits per second.
// The suffixes are decimal (k or K: 10^3, M: 10^6, G: 10^9); the rate must
// be positive.
func Parse(s string) (float64, error) {
	num, mult := s, 1.0
	switch {
	case strings.HasSuffix(num, "k"), strings.HasSuffix(num, "K"):
		num, mult = num[:len(num)-1], 1e3
	case strings.HasSuffix(num, "M"):
		num, mult = num[:len(num)-1], 1e6
	case strings.HasSuffix(num, "G"):
		num, mult = num[:len(num)-1], 1e9
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v > 0) || v*mult > 1e15 {
		return 0, fmt.Errorf("bad rate %q (bits per second, e.g. 100M)", s)
	}
	return v * mult, nil
}
