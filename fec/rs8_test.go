package fec

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("fec.seed", 0, "seed for the randomized tests; 0 picks one from the clock")

// testRand returns a generator whose seed is reported if the test fails, so
// that a failure can be replayed with -fec.seed.
func testRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test ./fec/ -run '^%s$' -fec.seed=%d", t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, 0x5eed))
}

func randomSymbols(rng *rand.Rand, n, size int) [][]byte {
	s := make([][]byte, n)
	for i := range s {
		s[i] = make([]byte, size)
		for b := range s[i] {
			s[i][b] = byte(rng.Uint32())
		}
	}
	return s
}

// slowEncode computes parity with scalar arithmetic only, as a check on the
// SIMD path.
func slowEncode(c *Codec, src [][]byte, np int) [][]byte {
	parity := make([][]byte, np)
	for j := range parity {
		parity[j] = make([]byte, len(src[0]))
		for i, s := range src {
			coef := c.rows[j*c.k+i]
			for b := range s {
				parity[j][b] ^= slowMul(coef, s[b])
			}
		}
	}
	return parity
}

func mustRS8(t testing.TB, k, p int) *Codec {
	t.Helper()
	c, err := RS8(k, p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRoundTripRandom(t *testing.T) {
	rng := testRand(t)
	codes := [][2]int{
		{1, 0}, {1, 1}, {1, 254}, {2, 1}, {3, 3}, {4, 2}, {8, 4}, {16, 4}, {32, 8}, {64, 8}, {64, 16},
		{100, 100}, {128, 127}, {200, 55}, {254, 1}, {255, 0},
	}
	for _, kp := range codes {
		k, p := kp[0], kp[1]
		t.Run(fmt.Sprintf("k=%d,p=%d", k, p), func(t *testing.T) {
			c := mustRS8(t, k, p)
			rounds := 40
			if k+p > 100 {
				rounds = 10
			}
			for round := range rounds {
				kk := k
				if rng.IntN(2) == 0 {
					kk = 1 + rng.IntN(k) // shortened block
				}
				size := 1 + rng.IntN(200)
				if rng.IntN(4) == 0 {
					size = 1408
				}
				src := randomSymbols(rng, kk, size)
				parity := make([][]byte, p)
				for j := range parity {
					parity[j] = make([]byte, size)
				}
				if err := c.Encode(src, parity); err != nil {
					t.Fatal(err)
				}
				if round < 3 {
					for j, want := range slowEncode(c, src, p) {
						if !bytes.Equal(parity[j], want) {
							t.Fatalf("k′=%d size=%d: parity %d differs from scalar encoding", kk, size, j)
						}
					}
				}

				// Lose up to p of the k′+p symbols, anywhere.
				n := kk + p
				lost := rng.Perm(n)[:rng.IntN(p+1)]
				symbols := make([][]byte, n)
				copy(symbols, src)
				copy(symbols[kk:], parity)
				backing := make(map[int][]byte)
				for _, i := range lost {
					if rng.IntN(2) == 0 {
						symbols[i] = nil
					} else {
						buf := make([]byte, size, size+rng.IntN(3))
						backing[i] = buf
						symbols[i] = buf[:0]
					}
				}
				// Sometimes leave trailing parity slots out altogether.
				for len(symbols) > kk && len(symbols[len(symbols)-1]) == 0 && rng.IntN(2) == 0 {
					symbols = symbols[:len(symbols)-1]
				}
				if err := c.Reconstruct(symbols, kk); err != nil {
					t.Fatalf("k′=%d size=%d lost=%v: %v", kk, size, lost, err)
				}
				for i := range kk {
					if !bytes.Equal(symbols[i], src[i]) {
						t.Fatalf("k′=%d size=%d lost=%v: source %d not recovered", kk, size, lost, i)
					}
					if buf, ok := backing[i]; ok && &symbols[i][0] != &buf[0] {
						t.Fatalf("source %d recovered into a new buffer despite capacity", i)
					}
				}
			}
		})
	}
}

func TestReconstructTooManyErasures(t *testing.T) {
	rng := testRand(t)
	for _, kp := range [][2]int{{1, 0}, {4, 0}, {1, 1}, {8, 4}, {64, 16}, {200, 55}} {
		k, p := kp[0], kp[1]
		c := mustRS8(t, k, p)
		for _, kk := range []int{k, 1 + rng.IntN(k)} {
			src := randomSymbols(rng, kk, 32)
			parity := randomSymbols(rng, p, 32)
			if err := c.Encode(src, parity); err != nil {
				t.Fatal(err)
			}
			symbols := append(append([][]byte{}, src...), parity...)
			// p+1 losses, at least one of them a source symbol.
			lost := append([]int{rng.IntN(kk)}, rng.Perm(kk+p)...)
			seen := map[int]bool{}
			for _, i := range lost {
				if len(seen) == p+1 {
					break
				}
				seen[i] = true
				symbols[i] = nil
			}
			before := append([][]byte{}, symbols...)
			err := c.Reconstruct(symbols, kk)
			if !errors.Is(err, ErrTooFewSymbols) {
				t.Fatalf("k=%d p=%d k′=%d, %d lost: err = %v, want ErrTooFewSymbols", k, p, kk, p+1, err)
			}
			for i := range symbols {
				if len(symbols[i]) != len(before[i]) {
					t.Fatalf("failed Reconstruct changed symbol %d", i)
				}
			}
		}
	}
}

func TestRS8Params(t *testing.T) {
	for _, kp := range [][2]int{{0, 0}, {0, 4}, {-1, 2}, {4, -1}, {200, 56}, {255, 1}, {256, 0}, {1, 255}, {1 << 20, 0}} {
		if _, err := RS8(kp[0], kp[1]); !errors.Is(err, ErrCodeParams) {
			t.Errorf("RS8(%d, %d): err = %v, want ErrCodeParams", kp[0], kp[1], err)
		}
	}
	for _, kp := range [][2]int{{1, 0}, {255, 0}, {1, 254}, {254, 1}, {200, 55}} {
		c, err := RS8(kp[0], kp[1])
		if err != nil {
			t.Errorf("RS8(%d, %d): %v", kp[0], kp[1], err)
			continue
		}
		if c.K() != kp[0] || c.P() != kp[1] {
			t.Errorf("RS8(%d, %d) has K, P = %d, %d", kp[0], kp[1], c.K(), c.P())
		}
	}
	if a, b := mustRS8(t, 16, 4), mustRS8(t, 16, 4); a != b {
		t.Error("RS8 built the same code twice")
	}
	if ParityID(49, 0) != 49 || ParityID(64, 15) != 79 {
		t.Error("ParityID")
	}
}

func TestEncodeErrors(t *testing.T) {
	c := mustRS8(t, 8, 4)
	sym := func(n, size int) [][]byte { return randomSymbols(rand.New(rand.NewPCG(1, 1)), n, size) }
	ragged := sym(8, 16)
	ragged[5] = ragged[5][:15]
	shortParity := sym(2, 16)
	shortParity[1] = shortParity[1][:8]
	tests := []struct {
		name        string
		src, parity [][]byte
		want        error
	}{
		{"no source", nil, sym(4, 16), ErrSymbolCount},
		{"more than k source", sym(9, 16), sym(4, 16), ErrSymbolCount},
		{"more than p parity", sym(8, 16), sym(5, 16), ErrSymbolCount},
		{"empty symbols", sym(8, 0), sym(4, 0), ErrSymbolSize},
		{"unequal source", ragged, sym(4, 16), ErrSymbolSize},
		{"parity of another length", sym(8, 16), sym(4, 17), ErrSymbolSize},
		{"one short parity buffer", sym(8, 16), shortParity, ErrSymbolSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := make([][]byte, len(tt.parity))
			for j := range tt.parity {
				before[j] = bytes.Clone(tt.parity[j])
			}
			if err := c.Encode(tt.src, tt.parity); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			for j := range tt.parity {
				if !bytes.Equal(before[j], tt.parity[j]) {
					t.Fatalf("failed Encode wrote parity %d", j)
				}
			}
		})
	}
	// Valid edge cases: no parity requested, and fewer than p.
	if err := c.Encode(sym(3, 16), nil); err != nil {
		t.Error(err)
	}
	two := sym(2, 16)
	if err := c.Encode(sym(8, 16), two); err != nil {
		t.Error(err)
	}
	four := sym(4, 16)
	if err := c.Encode(sym(8, 16), four); err != nil || !bytes.Equal(two[0], four[0]) || !bytes.Equal(two[1], four[1]) {
		t.Errorf("partial encoding differs from the start of a full one (err %v)", err)
	}
}

func TestReconstructErrors(t *testing.T) {
	c := mustRS8(t, 8, 4)
	rng := rand.New(rand.NewPCG(2, 2))
	block := func(kk int) [][]byte {
		src := randomSymbols(rng, kk, 16)
		parity := randomSymbols(rng, 4, 16)
		if err := c.Encode(src, parity); err != nil {
			t.Fatal(err)
		}
		return append(src, parity...)
	}
	ragged := block(8)
	ragged[0] = nil
	ragged[9] = ragged[9][:10]
	allGone := make([][]byte, 12)
	tests := []struct {
		name     string
		symbols  [][]byte
		srcCount int
		want     error
	}{
		{"srcCount 0", block(8), 0, ErrSymbolCount},
		{"srcCount over k", append(block(8), nil), 9, ErrSymbolCount},
		{"fewer symbols than srcCount", block(8)[:7], 8, ErrSymbolCount},
		{"more than srcCount+p", append(block(8), nil), 8, ErrSymbolCount},
		{"unequal lengths", ragged, 8, ErrSymbolSize},
		{"nothing present", allGone, 8, ErrTooFewSymbols},
		{"parity cut off", append([][]byte{nil}, block(8)[1:8]...), 8, ErrTooFewSymbols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.Reconstruct(tt.symbols, tt.srcCount); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNoParityCode(t *testing.T) {
	c := mustRS8(t, 10, 0)
	src := randomSymbols(rand.New(rand.NewPCG(3, 3)), 10, 20)
	if err := c.Encode(src, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Encode(src, [][]byte{make([]byte, 20)}); !errors.Is(err, ErrSymbolCount) {
		t.Fatalf("parity from a p=0 code: err = %v", err)
	}
	if err := c.Reconstruct(src, 10); err != nil {
		t.Fatalf("all present: %v", err)
	}
	lost := append([][]byte{}, src...)
	lost[3] = nil
	if err := c.Reconstruct(lost, 10); !errors.Is(err, ErrTooFewSymbols) {
		t.Fatalf("one lost: err = %v, want ErrTooFewSymbols", err)
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for _, tc := range []struct{ k, p, kk int }{{16, 4, 16}, {64, 8, 64}, {64, 16, 37}, {200, 55, 200}, {8, 0, 8}} {
		t.Run(fmt.Sprintf("k=%d,p=%d,k′=%d", tc.k, tc.p, tc.kk), func(t *testing.T) {
			c := mustRS8(t, tc.k, tc.p)
			src := randomSymbols(rng, tc.kk, 1408)
			parity := randomSymbols(rng, tc.p, 1408)
			if n := testing.AllocsPerRun(50, func() { _ = c.Encode(src, parity) }); n != 0 {
				t.Errorf("Encode: %v allocs per block", n)
			}
			symbols := append(append([][]byte{}, src...), parity...)
			lose := func() {
				for i := range min(tc.p, tc.kk) {
					symbols[i] = symbols[i][:0]
				}
			}
			if n := testing.AllocsPerRun(50, func() {
				lose()
				if err := c.Reconstruct(symbols, tc.kk); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Reconstruct: %v allocs per block", n)
			}
			if n := testing.AllocsPerRun(50, func() { _, _ = RS8(tc.k, tc.p) }); n != 0 {
				t.Errorf("cached RS8: %v allocs per call", n)
			}
		})
	}
}

// TestConcurrentUse shares codecs between goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 5))
			for range 20 {
				k, p := []int{8, 16, 64}[rng.IntN(3)], []int{2, 4, 8}[rng.IntN(3)]
				c, err := RS8(k, p)
				if err != nil {
					t.Error(err)
					return
				}
				kk := 1 + rng.IntN(k)
				src := randomSymbols(rng, kk, 100)
				parity := randomSymbols(rng, p, 100)
				if err := c.Encode(src, parity); err != nil {
					t.Error(err)
					return
				}
				symbols := append(append([][]byte{}, src...), parity...)
				for _, i := range rng.Perm(kk + p)[:p] {
					symbols[i] = nil
				}
				if err := c.Reconstruct(symbols, kk); err != nil {
					t.Error(err)
					return
				}
				for i := range kk {
					if !bytes.Equal(symbols[i], src[i]) {
						t.Errorf("k=%d p=%d k′=%d: source %d not recovered", k, p, kk, i)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestCodecCacheBounded: the codec cache holds at most maxCachedCodecs
// entries however many (k, p) pairs are asked for (k and p come from
// packets), keeps the recently used ones, and codecs dropped from it still
// work.
func TestCodecCacheBounded(t *testing.T) {
	first := mustRS8(t, 10, 4)
	for k := 1; k <= 40; k++ {
		for p := 0; p < 5; p++ {
			mustRS8(t, k, p)
			if k%4 == 0 {
				mustRS8(t, 20, 4) // kept warm
			}
		}
	}
	warm := mustRS8(t, 20, 4)
	codecs.Lock()
	n := len(codecs.m)
	_, hasWarm := codecs.m[[2]uint8{20, 4}]
	codecs.Unlock()
	if n > maxCachedCodecs {
		t.Fatalf("%d codecs cached after 200 distinct codes, want at most %d", n, maxCachedCodecs)
	}
	if !hasWarm || mustRS8(t, 20, 4) != warm {
		t.Fatal("a codec in constant use was dropped from the cache")
	}
	if again := mustRS8(t, 10, 4); again == first {
		t.Fatal("codec (10, 4) still cached after 200 others")
	}
	// The dropped codec still encodes as a fresh one does.
	src := [][]byte{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}, {11, 12}, {13, 14}, {15, 16}, {17, 18}, {19, 20}}
	a, b := [][]byte{make([]byte, 2), make([]byte, 2)}, [][]byte{make([]byte, 2), make([]byte, 2)}
	if err := first.Encode(src, a); err != nil {
		t.Fatal(err)
	}
	if err := mustRS8(t, 10, 4).Encode(src, b); err != nil {
		t.Fatal(err)
	}
	if string(a[0]) != string(b[0]) || string(a[1]) != string(b[1]) {
		t.Fatal("dropped codec encodes differently")
	}
}
