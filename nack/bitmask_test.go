package nack

import (
	"math/rand/v2"
	"testing"
)

// model is the obvious implementation Bitmask is checked against.
type model []bool

func (m model) count() int {
	c := 0
	for _, b := range m {
		if b {
			c++
		}
	}
	return c
}

// next returns, for every i in [0, len(m)], the smallest j >= i with
// m[j] == v, or -1.
func (m model) next(v bool) []int {
	out := make([]int, len(m)+1)
	out[len(m)] = -1
	for i := len(m) - 1; i >= 0; i-- {
		if m[i] == v {
			out[i] = i
		} else {
			out[i] = out[i+1]
		}
	}
	return out
}

func checkAgainst(t *testing.T, b *Bitmask, m model) {
	t.Helper()
	if b.Len() != len(m) {
		t.Fatalf("Len = %d, want %d", b.Len(), len(m))
	}
	if got, want := b.Count(), m.count(); got != want {
		t.Fatalf("Count = %d, want %d", got, want)
	}
	nextSet, nextClear := m.next(true), m.next(false)
	at := func(a []int, i int) int { return a[min(max(i, 0), len(m))] }
	if got, want := b.FirstSet(), nextSet[0]; got != want {
		t.Fatalf("FirstSet = %d, want %d", got, want)
	}
	for i := -1; i <= len(m)+1; i++ {
		if i >= 0 && i < len(m) && b.Test(i) != m[i] {
			t.Fatalf("Test(%d) = %v, want %v", i, b.Test(i), m[i])
		}
		if got, want := b.NextSet(i), at(nextSet, i); got != want {
			t.Fatalf("NextSet(%d) = %d, want %d", i, got, want)
		}
		if got, want := b.NextClear(i), at(nextClear, i); got != want {
			t.Fatalf("NextClear(%d) = %d, want %d", i, got, want)
		}
	}
	// Runs cover exactly the set members, each maximal.
	seen := make(model, len(m))
	for s, e := b.NextRun(0); s >= 0; s, e = b.NextRun(e) {
		if s >= e || (s > 0 && m[s-1] && !seen[s-1]) || (e < len(m) && m[e]) {
			t.Fatalf("run [%d,%d) is not maximal", s, e)
		}
		for i := s; i < e; i++ {
			if !m[i] {
				t.Fatalf("run [%d,%d) holds %d, not in the set", s, e, i)
			}
			seen[i] = true
		}
	}
	for i := range m {
		if m[i] != seen[i] {
			t.Fatalf("runs miss %d", i)
		}
	}
}

func TestBitmaskEdges(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 127, 128, 255, 256, 65535, 65536} {
		b := NewBitmask(n)
		m := make(model, n)
		checkAgainst(t, b, m)
		// Out-of-range indices are ignored, never a panic.
		for _, i := range []int{-1, n, n + 1, 1 << 40} {
			b.Set(i)
			b.Clear(i)
			if b.Test(i) {
				t.Fatalf("n=%d: Test(%d) true out of range", n, i)
			}
		}
		if n == 0 {
			continue
		}
		for _, i := range []int{0, n - 1, n / 2, 63 % n, 64 % n} {
			b.Set(i)
			m[i] = true
		}
		checkAgainst(t, b, m)
		b.SetRange(-5, n+5) // clipped
		for i := range m {
			m[i] = true
		}
		checkAgainst(t, b, m)
		b.Clear(n - 1)
		m[n-1] = false
		checkAgainst(t, b, m)
		b.Reset()
		clear(m)
		checkAgainst(t, b, m)
	}
}

func TestBitmaskRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 63, 64, 100, 255, 256, 1000} {
		b := NewBitmask(n)
		m := make(model, n)
		for step := 0; step < 2000; step++ {
			i := rng.IntN(n+4) - 2
			switch rng.IntN(4) {
			case 0:
				b.Set(i)
				if i >= 0 && i < n {
					m[i] = true
				}
			case 1:
				b.Clear(i)
				if i >= 0 && i < n {
					m[i] = false
				}
			case 2:
				j := i + rng.IntN(130)
				b.SetRange(i, j)
				for x := max(i, 0); x < min(j, n); x++ {
					m[x] = true
				}
			case 3:
				if rng.IntN(50) == 0 {
					b.Reset()
					clear(m)
				}
			}
			if step%97 == 0 {
				checkAgainst(t, b, m)
			}
		}
		checkAgainst(t, b, m)
	}
}

func TestBitmaskResize(t *testing.T) {
	b := NewBitmask(200)
	b.SetRange(0, 200)
	b.Resize(70) // shrinking clears; bits beyond the new length stay clear
	checkAgainst(t, b, make(model, 70))
	b.Set(69)
	b.Resize(200) // growing within capacity clears too, without allocating
	checkAgainst(t, b, make(model, 200))
	if a := testing.AllocsPerRun(100, func() { b.Resize(150); b.Set(3); b.Resize(200) }); a != 0 && !raceEnabled {
		t.Fatalf("Resize within capacity allocates %v times", a)
	}
	b.Resize(1000) // beyond capacity: grows
	if b.Len() != 1000 || b.Cap() < 1000 {
		t.Fatalf("Len %d Cap %d after growing", b.Len(), b.Cap())
	}
	checkAgainst(t, b, make(model, 1000))
	b.Resize(-3)
	checkAgainst(t, b, model{})

	var z Bitmask // the zero value is an empty set
	checkAgainst(t, &z, model{})
	if s, _ := z.NextRun(0); s != -1 {
		t.Fatal("NextRun on empty set")
	}
}

func TestBitmaskSubset(t *testing.T) {
	a, b := NewBitmask(130), NewBitmask(130)
	a.Set(3)
	a.Set(129)
	b.SetRange(0, 10)
	if a.subsetOf(b) {
		t.Fatal("129 is not in b")
	}
	b.Set(129)
	if !a.subsetOf(b) || b.subsetOf(a) {
		t.Fatal("subset wrong")
	}
	short := NewBitmask(64)
	short.Set(3)
	if !short.subsetOf(a) || a.subsetOf(short) {
		t.Fatal("subset across lengths wrong")
	}
}
