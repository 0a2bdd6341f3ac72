package fec

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/reedsolomon"
)

// goldenCase is one MATRIX or VECTOR entry of testdata/nrl-rs8-vectors.txt,
// recorded from the reference implementation.
type goldenCase struct {
	line   int
	matrix bool
	k, p   int
	vs, n  int      // VECTOR only: symbol length, source symbols present
	rows   [][]byte // MATRIX: parity rows; VECTOR: parity symbols
}

func (g goldenCase) String() string {
	if g.matrix {
		return fmt.Sprintf("line %d MATRIX k=%d p=%d", g.line, g.k, g.p)
	}
	return fmt.Sprintf("line %d VECTOR k=%d p=%d vs=%d present=%d", g.line, g.k, g.p, g.vs, g.n)
}

func loadGolden(t *testing.T) []goldenCase {
	t.Helper()
	f, err := os.Open("testdata/nrl-rs8-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cases []goldenCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "MATRIX "):
			g := goldenCase{line: ln, matrix: true}
			if _, err := fmt.Sscanf(line, "MATRIX k=%d p=%d", &g.k, &g.p); err != nil {
				t.Fatalf("line %d: %v", ln, err)
			}
			cases = append(cases, g)
		case strings.HasPrefix(line, "VECTOR "):
			g := goldenCase{line: ln}
			if _, err := fmt.Sscanf(line, "VECTOR k=%d p=%d vs=%d present=%d", &g.k, &g.p, &g.vs, &g.n); err != nil {
				t.Fatalf("line %d: %v", ln, err)
			}
			cases = append(cases, g)
		default:
			if len(cases) == 0 {
				t.Fatalf("line %d: data before any header", ln)
			}
			g := &cases[len(cases)-1]
			want := fmt.Sprintf("row%d:", len(g.rows))
			if !g.matrix {
				want = fmt.Sprintf("parity%d:", len(g.rows))
			}
			data, ok := strings.CutPrefix(line, want)
			if !ok {
				t.Fatalf("line %d: want %q, got %q", ln, want, line)
			}
			b, err := hex.DecodeString(strings.ReplaceAll(data, " ", ""))
			if err != nil {
				t.Fatalf("line %d: %v", ln, err)
			}
			g.rows = append(g.rows, b)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, g := range cases {
		size := g.k
		if !g.matrix {
			size = g.vs
		}
		if len(g.rows) != g.p {
			t.Fatalf("%v: %d rows, want %d", g, len(g.rows), g.p)
		}
		for _, r := range g.rows {
			if len(r) != size {
				t.Fatalf("%v: row of %d bytes, want %d", g, len(r), size)
			}
		}
	}
	return cases
}

// goldenSource returns the source symbols the reference vectors were made
// from: symbol i, byte b is (i*31 + b*7 + 1) & 0xff.
func goldenSource(n, vs int) [][]byte {
	src := make([][]byte, n)
	for i := range src {
		src[i] = make([]byte, vs)
		for b := range src[i] {
			src[i][b] = byte(i*31 + b*7 + 1)
		}
	}
	return src
}

func TestGoldenFileCoverage(t *testing.T) {
	var matrices, vectors, short int
	for _, g := range loadGolden(t) {
		if g.matrix {
			matrices++
		} else {
			vectors++
			if g.n < g.k {
				short++
			}
		}
	}
	// Guards against a truncated copy silently skipping cases.
	if matrices != 9 || vectors != 9 || short != 2 {
		t.Fatalf("golden file has %d matrices, %d vectors (%d short), want 9, 9 (2)", matrices, vectors, short)
	}
}

func TestGoldenMatrices(t *testing.T) {
	for _, g := range loadGolden(t) {
		if !g.matrix {
			continue
		}
		t.Run(g.String(), func(t *testing.T) {
			c, err := RS8(g.k, g.p)
			if err != nil {
				t.Fatal(err)
			}
			for j, want := range g.rows {
				if got := c.rows[j*g.k : (j+1)*g.k]; !bytes.Equal(got, want) {
					t.Errorf("row %d:\n got % x\nwant % x", j, got, want)
				}
			}
		})
	}
}

func TestGoldenVectors(t *testing.T) {
	for _, g := range loadGolden(t) {
		if g.matrix {
			continue
		}
		t.Run(g.String(), func(t *testing.T) {
			c, err := RS8(g.k, g.p)
			if err != nil {
				t.Fatal(err)
			}
			src := goldenSource(g.n, g.vs)
			parity := make([][]byte, g.p)
			for j := range parity {
				parity[j] = make([]byte, g.vs)
			}
			if err := c.Encode(src, parity); err != nil {
				t.Fatal(err)
			}
			for j, want := range g.rows {
				if !bytes.Equal(parity[j], want) {
					t.Errorf("parity %d:\n got %x\nwant %x", j, parity[j], want)
				}
			}

			// The reference's parity must also decode: drop the first p
			// source symbols (or all of them if fewer) and recover them.
			symbols := make([][]byte, g.n+g.p)
			copy(symbols, src)
			copy(symbols[g.n:], g.rows)
			lost := min(g.p, g.n)
			for i := range lost {
				symbols[i] = nil
			}
			if err := c.Reconstruct(symbols, g.n); err != nil {
				t.Fatal(err)
			}
			for i := range lost {
				if !bytes.Equal(symbols[i], src[i]) {
					t.Errorf("recovered source %d:\n got %x\nwant %x", i, symbols[i], src[i])
				}
			}
		})
	}
}

// TestKlauspostCustomMatrix checks that the parity rows, given to
// klauspost/reedsolomon as a custom matrix, make its own encoder produce the
// reference's parity too: the matrix is the whole interoperability story,
// whichever kernel applies it.
func TestKlauspostCustomMatrix(t *testing.T) {
	for _, g := range loadGolden(t) {
		if g.matrix || g.n != g.k {
			continue
		}
		t.Run(g.String(), func(t *testing.T) {
			c, err := RS8(g.k, g.p)
			if err != nil {
				t.Fatal(err)
			}
			custom := make([][]byte, g.p)
			for j := range custom {
				custom[j] = c.rows[j*g.k : (j+1)*g.k]
			}
			enc, err := reedsolomon.New(g.k, g.p, reedsolomon.WithCustomMatrix(custom))
			if err != nil {
				t.Fatal(err)
			}
			shards := goldenSource(g.k, g.vs)
			for range g.p {
				shards = append(shards, make([]byte, g.vs))
			}
			if err := enc.Encode(shards); err != nil {
				t.Fatal(err)
			}
			for j, want := range g.rows {
				if !bytes.Equal(shards[g.k+j], want) {
					t.Errorf("klauspost parity %d:\n got %x\nwant %x", j, shards[g.k+j], want)
				}
			}
		})
	}
}
