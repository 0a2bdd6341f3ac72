package fec

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Symbols as the reference codes them for its default 1400-byte segments:
// segment size + 8.
const benchSymbol = 1400 + 8

var benchCodes = [][2]int{{16, 4}, {64, 8}, {64, 16}, {200, 55}}

// Throughput is reported in source bytes per second.
func BenchmarkEncode(b *testing.B) {
	for _, kp := range benchCodes {
		k, p := kp[0], kp[1]
		b.Run(fmt.Sprintf("k=%d,p=%d", k, p), func(b *testing.B) {
			c := mustRS8(b, k, p)
			rng := rand.New(rand.NewPCG(1, 1))
			src := randomSymbols(rng, k, benchSymbol)
			parity := randomSymbols(rng, p, benchSymbol)
			b.SetBytes(int64(k * benchSymbol))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Encode(src, parity); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReconstruct recovers p lost source symbols, spread over the
// block, from the remaining source and all parity.
func BenchmarkReconstruct(b *testing.B) {
	for _, kp := range benchCodes {
		k, p := kp[0], kp[1]
		b.Run(fmt.Sprintf("k=%d,p=%d", k, p), func(b *testing.B) {
			c := mustRS8(b, k, p)
			rng := rand.New(rand.NewPCG(2, 2))
			src := randomSymbols(rng, k, benchSymbol)
			parity := randomSymbols(rng, p, benchSymbol)
			if err := c.Encode(src, parity); err != nil {
				b.Fatal(err)
			}
			symbols := append(append([][]byte{}, src...), parity...)
			b.SetBytes(int64(k * benchSymbol))
			b.ReportAllocs()
			for b.Loop() {
				for j := range p {
					i := j * k / p
					symbols[i] = symbols[i][:0]
				}
				if err := c.Reconstruct(symbols, k); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
