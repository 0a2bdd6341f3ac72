package fec

import (
	"math/rand/v2"
	"testing"
)

// slowMul multiplies by shift-and-add, independently of the tables.
func slowMul(a, b byte) byte {
	var r byte
	x := uint16(a)
	for ; b != 0; b >>= 1 {
		if b&1 != 0 {
			r ^= byte(x)
		}
		x <<= 1
		if x&0x100 != 0 {
			x ^= gfPoly
		}
	}
	return r
}

func TestGFMulMatchesPolynomialArithmetic(t *testing.T) {
	for a := range 256 {
		for b := range 256 {
			if got, want := gfMul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("gfMul(%#x, %#x) = %#x, want %#x", a, b, got, want)
			}
		}
		if a != 0 {
			if got := gfMul(byte(a), gfInv(byte(a))); got != 1 {
				t.Fatalf("%#x * gfInv(%#x) = %#x", a, a, got)
			}
		}
	}
	if gfPow(255) != 1 || gfPow(1) != 2 || gfPow(8) != 0x1d {
		t.Fatal("α is not a primitive element of GF(2^8)/0x11D")
	}
}

// TestSliceKernelsMatchScalar checks klauspost's SIMD kernels, which apply
// our matrices, against the scalar field on every coefficient and on lengths
// either side of the point where mulAdd switches to them.
func TestSliceKernelsMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 31, 63, 64, 65, 100, 1408} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.Uint32())
		}
		for c := range 256 {
			dst := make([]byte, n)
			init := make([]byte, n)
			for i := range init {
				init[i] = byte(rng.Uint32())
			}
			copy(dst, init)
			mulAdd(dst, src, byte(c))
			for i := range dst {
				if want := init[i] ^ slowMul(byte(c), src[i]); dst[i] != want {
					t.Fatalf("mulAdd n=%d c=%#x: byte %d = %#x, want %#x", n, c, i, dst[i], want)
				}
			}
			mulSet(dst, src, byte(c))
			for i := range dst {
				if want := slowMul(byte(c), src[i]); dst[i] != want {
					t.Fatalf("mulSet n=%d c=%#x: byte %d = %#x, want %#x", n, c, i, dst[i], want)
				}
			}
			copy(dst, src)
			mulSet(dst, dst, byte(c)) // in place, as gaussJordan uses it
			for i := range dst {
				if want := slowMul(byte(c), src[i]); dst[i] != want {
					t.Fatalf("in-place mulSet n=%d c=%#x: byte %d = %#x, want %#x", n, c, i, dst[i], want)
				}
			}
		}
	}
}

func TestGaussJordanInverts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 5, 40, 100} {
		w := 2 * n
		var a, m []byte
		for {
			a = make([]byte, n*n)
			for i := range a {
				a[i] = byte(rng.Uint32())
			}
			m = make([]byte, n*w)
			for r := range n {
				copy(m[r*w:], a[r*n:(r+1)*n])
				m[r*w+n+r] = 1
			}
			if gaussJordan(m, n, w) {
				break // random matrices are almost always invertible
			}
		}
		for r := range n {
			for c := range n {
				var s byte
				for i := range n {
					s ^= slowMul(a[r*n+i], m[i*w+n+c])
				}
				want := byte(0)
				if r == c {
					want = 1
				}
				if s != want {
					t.Fatalf("n=%d: (A·A⁻¹)[%d][%d] = %#x, want %#x", n, r, c, s, want)
				}
			}
		}
	}
	singular := []byte{1, 2, 0, 0, 2, 4, 0, 0} // 2×2 with dependent rows, augmented
	if gaussJordan(singular, 2, 4) {
		t.Fatal("singular matrix reported invertible")
	}
}

// TestParityRowsIndependentOfP checks the property Encode relies on when
// asked for fewer than p parity symbols.
func TestParityRowsIndependentOfP(t *testing.T) {
	for _, k := range []int{1, 7, 64, 200} {
		full := parityMatrix(k, MaxSymbols-k)
		for _, p := range []int{1, 3, 16, MaxSymbols - k} {
			if p > MaxSymbols-k {
				continue
			}
			rows := parityMatrix(k, p)
			for i := range rows {
				if rows[i] != full[i] {
					t.Fatalf("k=%d p=%d: parity matrix differs from the first rows of p=%d", k, p, MaxSymbols-k)
				}
			}
		}
	}
}
