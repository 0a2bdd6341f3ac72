package fec

import (
	"errors"
	"fmt"
	"sync"
)

// MaxSymbols is the largest k+p of a FEC Encoding ID 5 code: encoding symbol
// ids are 8 bits and GF(2^8) has 255 nonzero elements.
const MaxSymbols = 255

// Errors returned by [RS8], [Codec.Encode] and [Codec.Reconstruct]; test for
// them with errors.Is. The returned errors wrap these with the details.
var (
	// ErrCodeParams: k or p out of range.
	ErrCodeParams = errors.New("fec: invalid Reed-Solomon code parameters")
	// ErrSymbolCount: the number of symbols passed does not fit the code.
	ErrSymbolCount = errors.New("fec: wrong number of symbols")
	// ErrSymbolSize: symbols of unequal or zero length.
	ErrSymbolSize = errors.New("fec: symbol length mismatch")
	// ErrTooFewSymbols: more symbols are missing than parity can replace.
	ErrTooFewSymbols = errors.New("fec: too few symbols to decode the block")
)

// Codec encodes and decodes source blocks with the Reed-Solomon code of FEC
// Encoding ID 5 (RFC 5510) for blocks of up to k source symbols and p parity
// symbols, producing parity byte-identical to the reference NORM
// implementation. Get one with [RS8]; it is safe for concurrent use.
//
// A block may have fewer source symbols than k (k′ = [Partition.BlockLen]);
// it is then coded as if the missing k−k′ symbols were zero, with the same
// parity matrix, as the reference does. Parity symbol j of such a block
// travels with encoding symbol id k′+j (see [ParityID]), so the ids of a
// block are 0..k′+p−1 with no gap.
//
// The codec works on symbols of any length, as long as all symbols of a call
// have the same one. The code is byte-wise, so coding longer zero-padded
// symbols only appends bytes to the parity: the reference implementation
// codes symbols of segment size + 8 bytes (room for the NORM_OBJECT_STREAM
// payload header), and on the wire its parity for data and file objects is
// one segment long (the padding's parity is zero and not sent) while stream
// parity carries all segment size + 8 bytes. The last, short segment is
// coded zero-padded to the full symbol length.
//
// On success Encode and Reconstruct do not allocate (given recovery buffers,
// see Reconstruct) and run on the calling goroutine: the engines get
// parallelism by coding different blocks at once.
type Codec struct {
	k, p int
	rows []byte // p×k parity matrix, row-major

	// scratch holds *decodeScratch sized for this code, so that decoding
	// does not allocate in the steady state.
	scratch sync.Pool
}

type decodeScratch struct {
	missing []int  // indices of the missing source symbols
	inputs  []int  // indices of the symbols decoded from
	m       []byte // the decoding system, at most p×(k+p)
}

// maxCachedCodecs bounds the codec cache. A session uses one or two (k, p)
// pairs, but k and p come from the network (every NORM_DATA carries its
// FTI), so without a bound a peer could grow the cache by one matrix per
// pair, about 32,000 of them. The least recently used codec is dropped;
// whoever still holds it keeps a working codec.
const maxCachedCodecs = 32

var codecs struct {
	sync.Mutex
	m    map[[2]uint8]*cachedCodec
	tick uint64
}

type cachedCodec struct {
	c    *Codec
	used uint64
}

// RS8 returns the codec for blocks of up to k source symbols with p parity
// symbols (the FTI's maximum source block length and the session's parity
// count). Codecs are built once per (k, p) and shared, so calling RS8 for
// every block is cheap, although holding on to the result is cheaper. The
// cache keeps the most recently used few dozen codes; an older one is
// rebuilt when asked for again.
//
// It fails with [ErrCodeParams] unless k >= 1, p >= 0 and k+p <=
// MaxSymbols. With p = 0 the code has no parity: encoding has nothing to do
// and decoding succeeds only when no source symbol is missing.
func RS8(k, p int) (*Codec, error) {
	if k < 1 || p < 0 || k+p > MaxSymbols {
		return nil, fmt.Errorf("%w: k=%d p=%d, want k >= 1, p >= 0, k+p <= %d", ErrCodeParams, k, p, MaxSymbols)
	}
	key := [2]uint8{uint8(k), uint8(p)}
	codecs.Lock()
	defer codecs.Unlock()
	codecs.tick++
	if e, ok := codecs.m[key]; ok {
		e.used = codecs.tick
		return e.c, nil
	}
	c := &Codec{k: k, p: p, rows: parityMatrix(k, p)}
	c.scratch.New = func() any {
		return &decodeScratch{
			missing: make([]int, 0, k),
			inputs:  make([]int, 0, k),
			m:       make([]byte, p*(k+p)),
		}
	}
	if codecs.m == nil {
		codecs.m = make(map[[2]uint8]*cachedCodec, maxCachedCodecs)
	}
	if len(codecs.m) >= maxCachedCodecs {
		var old [2]uint8
		oldest := ^uint64(0)
		for k, e := range codecs.m {
			if e.used < oldest {
				old, oldest = k, e.used
			}
		}
		delete(codecs.m, old)
	}
	codecs.m[key] = &cachedCodec{c: c, used: codecs.tick}
	return c, nil
}

// K returns the maximum number of source symbols per block.
func (c *Codec) K() int { return c.k }

// P returns the number of parity symbols per block.
func (c *Codec) P() int { return c.p }

// ParityID returns the encoding symbol id that carries parity symbol j
// (0-based) of a block with srcCount source symbols: srcCount+j. It is also
// the index of that parity symbol in the slice given to [Codec.Reconstruct].
func ParityID(srcCount, j int) int { return srcCount + j }

// Encode computes parity symbols of one block. src holds the block's k′
// source symbols, 1 <= k′ <= K(), in encoding symbol id order; fewer than
// K() means a shortened block whose missing symbols count as zeros, without
// the caller padding anything. parity holds caller-owned buffers that Encode
// overwrites with parity symbols 0..len(parity)-1, len(parity) <= P(), which
// go on the wire with encoding symbol ids [ParityID](k′, j). Computing fewer
// than P() costs proportionally less and gives the same bytes as the first
// symbols of a full encoding.
//
// All symbols must have the same nonzero length, and parity buffers must not
// overlap any symbol. Encode fails with [ErrSymbolCount] or [ErrSymbolSize]
// otherwise, leaving parity untouched.
func (c *Codec) Encode(src, parity [][]byte) error {
	kk := len(src)
	if kk < 1 || kk > c.k {
		return fmt.Errorf("%w: %d source symbols, code takes 1 to %d", ErrSymbolCount, kk, c.k)
	}
	if len(parity) > c.p {
		return fmt.Errorf("%w: %d parity symbols requested, code has %d", ErrSymbolCount, len(parity), c.p)
	}
	size := len(src[0])
	if size == 0 {
		return fmt.Errorf("%w: empty source symbol", ErrSymbolSize)
	}
	for i, s := range src {
		if len(s) != size {
			return fmt.Errorf("%w: source symbol %d has %d bytes, symbol 0 has %d", ErrSymbolSize, i, len(s), size)
		}
	}
	for j, s := range parity {
		if len(s) != size {
			return fmt.Errorf("%w: parity buffer %d has %d bytes, symbols have %d", ErrSymbolSize, j, len(s), size)
		}
	}
	for j, out := range parity {
		row := c.rows[j*c.k : j*c.k+kk]
		mulSet(out, src[0], row[0])
		for i := 1; i < kk; i++ {
			mulAdd(out, src[i], row[i])
		}
	}
	return nil
}

// Reconstruct fills in the missing source symbols of one block of k′ =
// srcCount source symbols, 1 <= k′ <= K(). symbols is indexed by encoding
// symbol id: symbols[0:k′] are the source symbols and symbols[k′+j] is
// parity symbol j, for up to P() parity symbols (len(symbols) may stop short
// of k′+P(); absent ones count as missing). A symbol is missing when its
// slice is empty.
//
// Any k′ of the symbols suffice, in any mix of source and parity. Each
// missing source symbol is written into its slice's backing array when its
// capacity holds a symbol — pass buf[:0] to recover into buf without
// allocating — and into a newly allocated one otherwise; symbols[i] is then
// set to the recovered symbol. Missing parity symbols are left missing.
// Recovery buffers must not overlap present symbols.
//
// Reconstruct fails with [ErrTooFewSymbols] when fewer than k′ symbols are
// present, and with [ErrSymbolCount] or [ErrSymbolSize] when the arguments
// do not fit the code or the present symbols differ in length; symbols is
// then unchanged.
func (c *Codec) Reconstruct(symbols [][]byte, srcCount int) error {
	kk := srcCount
	if kk < 1 || kk > c.k {
		return fmt.Errorf("%w: %d source symbols, code takes 1 to %d", ErrSymbolCount, kk, c.k)
	}
	if len(symbols) < kk || len(symbols) > kk+c.p {
		return fmt.Errorf("%w: %d symbols for %d source and %d parity", ErrSymbolCount, len(symbols), kk, c.p)
	}
	size, present, srcMissing := 0, 0, 0
	for i, s := range symbols {
		switch {
		case len(s) == 0:
			if i < kk {
				srcMissing++
			}
			continue
		case size == 0:
			size = len(s)
		case len(s) != size:
			return fmt.Errorf("%w: symbol %d has %d bytes, others have %d", ErrSymbolSize, i, len(s), size)
		}
		present++
	}
	if srcMissing == 0 {
		return nil
	}
	if present < kk {
		return fmt.Errorf("%w: %d of %d source symbols missing, %d symbols present, need %d",
			ErrTooFewSymbols, srcMissing, kk, present, kk)
	}

	sc := c.scratch.Get().(*decodeScratch)
	defer c.scratch.Put(sc)

	// The system to solve, for the e missing source symbols d_M, present
	// ones d_S and the first e present parity symbols q_J, is
	//   q_J = P[J][M]·d_M + P[J][S]·d_S   (columns of P beyond k′ meet zeros)
	// so d_M = A⁻¹·(P[J][S]·d_S + q_J) with A = P[J][M]. Reducing the rows
	// [A | P[J][S] | I] gives [I | C], and C applied to (d_S, q_J) yields
	// d_M in one pass over the data.
	e := srcMissing
	missing, inputs := sc.missing[:0], sc.inputs[:0]
	for i := range kk {
		if len(symbols[i]) == 0 {
			missing = append(missing, i)
		} else {
			inputs = append(inputs, i)
		}
	}
	for i := kk; i < len(symbols) && len(inputs) < kk; i++ {
		if len(symbols[i]) != 0 {
			inputs = append(inputs, i)
		}
	}
	w := e + kk
	m := sc.m[:e*w]
	clear(m)
	for r := range e {
		prow := c.rows[(inputs[kk-e+r]-kk)*c.k:]
		mr := m[r*w : (r+1)*w]
		for col, i := range missing {
			mr[col] = prow[i]
		}
		for t, i := range inputs[:kk-e] {
			mr[e+t] = prow[i]
		}
		mr[w-e+r] = 1
	}
	if !gaussJordan(m, e, w) {
		// Any k′ rows of an MDS generator are independent, whatever the
		// symbols hold, so only a bug can get here.
		return errors.New("fec: internal error: singular decoding matrix")
	}
	for r, i := range missing {
		out := symbols[i]
		if cap(out) >= size {
			out = out[:size]
		} else {
			out = make([]byte, size)
		}
		coef := m[r*w+e : (r+1)*w]
		mulSet(out, symbols[inputs[0]], coef[0])
		for t := 1; t < kk; t++ {
			mulAdd(out, symbols[inputs[t]], coef[t])
		}
		symbols[i] = out
	}
	return nil
}
