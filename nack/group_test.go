package nack

import (
	"math"
	"testing"
	"time"
)

func TestGroupCounterEstimate(t *testing.T) {
	t0 := time.Unix(100, 0)
	for _, n := range []int{1, 2, 3, 10, 100, 1000, 5000} {
		var g GroupCounter
		for i := range n {
			// Receivers of one subnet, each heard three times.
			for range 3 {
				g.Add(t0, 0x0b000001+uint32(i))
			}
		}
		est := g.Estimate(t0)
		if tol := max(0.05*float64(n), 0.5); math.Abs(est-float64(n)) > tol {
			t.Errorf("%d receivers: estimate %.1f", n, est)
		}
	}
}

func TestGroupCounterEpochs(t *testing.T) {
	t0 := time.Unix(100, 0)
	var g GroupCounter
	g.SetEpoch(time.Second)
	if n := g.Estimate(t0); n != 0 {
		t.Fatalf("fresh counter: %v", n)
	}
	for i := range 50 {
		g.Add(t0.Add(time.Duration(i)*time.Millisecond), uint32(i+1))
	}
	if n := g.Estimate(t0.Add(999 * time.Millisecond)); math.Round(n) != 50 {
		t.Fatalf("first epoch: estimate %.1f, want 50", n)
	}
	// The next epoch still counts the previous one's receivers, plus its own.
	g.Add(t0.Add(1500*time.Millisecond), 1000)
	if n := g.Estimate(t0.Add(1500 * time.Millisecond)); math.Round(n) != 51 {
		t.Fatalf("second epoch: estimate %.1f, want 51", n)
	}
	// Two epochs later only the receiver heard in the second one is left...
	if n := g.Estimate(t0.Add(2500 * time.Millisecond)); math.Round(n) != 1 {
		t.Fatalf("third epoch: estimate %.1f, want 1", n)
	}
	// ...and after a long silence, nobody.
	if n := g.Estimate(t0.Add(time.Hour)); n != 0 {
		t.Fatalf("after an hour: estimate %.1f, want 0", n)
	}
}

func TestGroupBackoff(t *testing.T) {
	for _, c := range []struct {
		heard   float64
		backoff int
	}{
		{0, 4}, // nothing heard: a group not known yet
		{math.NaN(), 4},
		{1, 2},
		{2, 2},
		{3, 2},
		{4, 2},
		{8, 3},
		{15, 3},
		{16, 4},
		{1000, 4},
		{1e9, 4},
	} {
		if b := GroupBackoff(c.heard, 4); b != c.backoff {
			t.Errorf("heard %v: backoff %d, want %d", c.heard, b, c.backoff)
		}
	}
	// A configured maximum below the group's logarithm bounds the factor.
	if b := GroupBackoff(1000, 2); b != 2 {
		t.Errorf("max 2: backoff %d", b)
	}
	if b := GroupBackoff(1000, 0); b != 0 {
		t.Errorf("max 0: backoff %d", b)
	}
	if b := GroupBackoff(1, 1); b != 1 {
		t.Errorf("max 1, one receiver: backoff %d", b)
	}
}
