package fec

import "github.com/klauspost/reedsolomon"

// GF(2^8) with the primitive polynomial x^8+x^4+x^3+x^2+1 (0x11D), the field
// of RFC 5510 and of the reference implementation. klauspost/reedsolomon
// works in the same field, which is what lets its SIMD kernels apply our
// matrices.
const gfPoly = 0x11D

// gfExp[i] is α^i for α = 2; it is doubled in length so that a sum of two
// logarithms indexes it without reduction modulo 255.
var gfExp, gfLog = gfTables()

func gfTables() (exp [510]byte, log [256]uint8) {
	x := 1
	for i := range 255 {
		exp[i] = byte(x)
		exp[i+255] = byte(x)
		log[x] = uint8(i)
		x <<= 1
		if x&0x100 != 0 {
			x ^= gfPoly
		}
	}
	return exp, log
}

func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gfExp[int(gfLog[a])+int(gfLog[b])]
}

// gfInv returns the multiplicative inverse of a, which must not be 0.
func gfInv(a byte) byte {
	return gfExp[255-int(gfLog[a])]
}

// gfPow returns α^n.
func gfPow(n int) byte {
	return gfExp[n%255]
}

// simd gives access to klauspost's vectorised slice kernels. Its zero value
// uses the CPU features detected at start-up and is safe for concurrent use.
//
// The package drives these kernels with its own matrices instead of using a
// reedsolomon.Encoder built WithCustomMatrix: on amd64 that encoder's Encode
// allocates on every call (matrix scratch that escapes to the heap) and its
// Reconstruct allocates many times, while the slice kernels never do, cost
// little more per block, and let shortened blocks skip their zero symbols.
// golden_test.go checks that both give the reference's parity.
var simd reedsolomon.LowLevel

// The SIMD kernels have a fixed cost per call that only pays off on longer
// slices; below this length a plain loop is as fast.
const simdMinLen = 64

// mulAdd sets dst[i] ^= c*src[i] for every i < len(src).
func mulAdd(dst, src []byte, c byte) {
	switch {
	case c == 0:
	case len(src) >= simdMinLen:
		simd.GalMulSliceXor(c, src, dst)
	default:
		dst = dst[:len(src)]
		lc := int(gfLog[c])
		for i, s := range src {
			if s != 0 {
				dst[i] ^= gfExp[lc+int(gfLog[s])]
			}
		}
	}
}

// mulSet sets dst[i] = c*src[i] for every i < len(src); dst may be src.
func mulSet(dst, src []byte, c byte) {
	if len(src) >= simdMinLen {
		simd.GalMulSlice(c, src, dst)
		return
	}
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = gfMul(c, s)
	}
}

// gaussJordan turns the rows×rows left part of the rows×width row-major
// matrix m into the identity by row operations, applying them to the whole
// rows, so that the right part becomes (left part)⁻¹ · (right part). It
// reports false, leaving m in an unspecified state, if the left part is
// singular.
func gaussJordan(m []byte, rows, width int) bool {
	row := func(r int) []byte { return m[r*width : (r+1)*width] }
	for col := range rows {
		piv := col
		for piv < rows && m[piv*width+col] == 0 {
			piv++
		}
		if piv == rows {
			return false
		}
		pr := row(piv)
		if piv != col {
			cr := row(col)
			for i := col; i < width; i++ {
				pr[i], cr[i] = cr[i], pr[i]
			}
			pr = cr
		}
		// Columns left of col are already zero in the pivot row, so every
		// operation can start at col.
		if c := pr[col]; c != 1 {
			mulSet(pr[col:], pr[col:], gfInv(c))
		}
		for r := range rows {
			if r != col {
				rr := row(r)
				mulAdd(rr[col:], pr[col:], rr[col])
			}
		}
	}
	return true
}

// parityMatrix returns the p×k row-major parity part of the reference's
// systematic generator for FEC Encoding ID 5 with k source and p parity
// symbols: start from the (k+p)×k Vandermonde matrix V whose rows are the
// powers 0..k-1 of the points 0, α^0, α^1, …, α^(k+p-2) (with 0^0 = 1), and
// multiply its last p rows by the inverse of its first k, which turns the
// top of V·V_top⁻¹ into the identity and leaves its bottom as the parity
// rows. Row j depends only on k and j, not on p.
func parityMatrix(k, p int) []byte {
	// Invert V_top by reducing [V_top | I].
	w := 2 * k
	aug := make([]byte, k*w)
	aug[0] = 1 // point 0: 0^0 = 1, then zeros
	for r := 1; r < k; r++ {
		for c := range k {
			aug[r*w+c] = gfPow((r - 1) * c)
		}
	}
	for r := range k {
		aug[r*w+k+r] = 1
	}
	if !gaussJordan(aug, k, w) {
		// V_top has distinct evaluation points, so it is always invertible.
		panic("fec: Vandermonde matrix is singular")
	}
	rows := make([]byte, p*k)
	for j := range p {
		// Row k+j of V evaluates at α^(k-1+j).
		out := rows[j*k : (j+1)*k]
		for c := range k {
			mulAdd(out, aug[c*w+k:(c+1)*w], gfPow((k-1+j)*c))
		}
	}
	return rows
}
