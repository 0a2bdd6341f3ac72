package nack

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// backoffCDF is the analytic CDF of BackoffDelay's distribution at t/T = x.
func backoffCDF(x, groupSize float64) float64 {
	l := math.Log(groupSize) + 1
	return math.Expm1(l*x) / math.Expm1(l)
}

func TestBackoffDistribution(t *testing.T) {
	const T = 400 * time.Millisecond
	const n = 200000
	for _, gs := range []float64{1, 10, 1000, 1e6} {
		rng := rand.New(rand.NewPCG(7, uint64(gs)))
		x := make([]float64, n)
		sum := 0.0
		for i := range x {
			d := BackoffDelay(rng.Float64(), T, gs)
			if d < 0 || d > T {
				t.Fatalf("gsize %g: delay %v outside [0, %v]", gs, d, T)
			}
			x[i] = float64(d) / float64(T)
			sum += x[i]
		}
		// Mean: E[t/T] = e^λ/(e^λ-1) - 1/λ.
		l := math.Log(gs) + 1
		wantMean := 1/(-math.Expm1(-l)) - 1/l
		if got := sum / n; math.Abs(got-wantMean) > 0.004 {
			t.Errorf("gsize %g: mean %.4f T, want %.4f T", gs, got, wantMean)
		}
		// Empirical CDF against the analytic one at many points; by the DKW
		// inequality a deviation of 0.006 has probability below 1e-6.
		sort.Float64s(x)
		for _, q := range []float64{0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99} {
			got := x[int(q*n)]
			if F := backoffCDF(got, gs); math.Abs(F-q) > 0.006 {
				t.Errorf("gsize %g: %g quantile at %.4f T, where the CDF is %.4f", gs, q, got, F)
			}
		}
	}
}

func TestBackoffInverse(t *testing.T) {
	// BackoffDelay is the inverse CDF: F(BackoffDelay(u)) = u, and it agrees
	// with the textbook form T/λ · ln(1 + u(e^λ - 1)) where that does not
	// overflow.
	const T = time.Second
	for _, gs := range []float64{1, 2, 50, 10000} {
		l := math.Log(gs) + 1
		prev := time.Duration(-1)
		for u := 0.0; u < 1; u += 1.0 / 64 {
			d := BackoffDelay(u, T, gs)
			if d < prev {
				t.Fatalf("gsize %g: not monotonic at u=%g", gs, u)
			}
			prev = d
			if F := backoffCDF(float64(d)/float64(T), gs); math.Abs(F-u) > 1e-6 {
				t.Fatalf("gsize %g: F(BackoffDelay(%g)) = %g", gs, u, F)
			}
			plain := time.Duration(float64(T) / l * math.Log1p(u*math.Expm1(l)))
			if diff := d - plain; diff < -time.Microsecond || diff > time.Microsecond {
				t.Fatalf("gsize %g u %g: %v, textbook form %v", gs, u, d, plain)
			}
		}
	}
}

func TestBackoffEdges(t *testing.T) {
	const T = 100 * time.Millisecond
	tests := []struct {
		name string
		u    float64
		max  time.Duration
		gs   float64
		want time.Duration
	}{
		{"zero max", 0.5, 0, 1000, 0},
		{"negative max", 0.5, -T, 1000, 0},
		{"u zero", 0, T, 1000, 0},
		{"u negative", -1, T, 1000, 0},
		{"u NaN", math.NaN(), T, 1000, 0},
		{"u one", 1, T, 1000, T},
		{"huge group", 0.5, T, 1e300, T - time.Duration(float64(T)*math.Ln2/(math.Log(1e300)+1))},
		{"infinite group", 0.5, T, math.Inf(1), T},
		{"group below one", 0.5, T, 0.01, BackoffDelay(0.5, T, 1)},
		{"group NaN", 0.5, T, math.NaN(), BackoffDelay(0.5, T, 1)},
	}
	for _, tc := range tests {
		got := BackoffDelay(tc.u, tc.max, tc.gs)
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: BackoffDelay(%v, %v, %v) = %v, want %v", tc.name, tc.u, tc.max, tc.gs, got, tc.want)
		}
	}
	// A large group backs off late: with 1000 receivers under 2% fire in
	// the first half of the window, (e^(λ/2) - 1)/(e^λ - 1) = 1.88%.
	if BackoffDelay(0.0187, T, 1000) >= T/2 || BackoffDelay(0.0189, T, 1000) <= T/2 {
		t.Error("T/2 is not at the 1.88% point for 1000 receivers")
	}
}

func TestHoldoffAndAggregation(t *testing.T) {
	g := 50 * time.Millisecond
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"holdoff K=4", NackHoldoff(g, 4), 300 * time.Millisecond},
		{"holdoff K=0", NackHoldoff(g, 0), 100 * time.Millisecond},
		{"holdoff K<0", NackHoldoff(g, -3), 100 * time.Millisecond},
		{"holdoff K=1.5", NackHoldoff(g, 1.5), 175 * time.Millisecond},
		{"holdoff no grtt", NackHoldoff(0, 4), 0},
		{"aggregation K=4", AggregationWindow(g, 4), 250 * time.Millisecond},
		{"aggregation K=0", AggregationWindow(g, 0), 50 * time.Millisecond},
		{"aggregation huge", AggregationWindow(time.Duration(math.MaxInt64/2), 10), time.Duration(math.MaxInt64)},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// A receiver's hold-off outlasts the sender's aggregation window by the
	// GRTT its repairs need to arrive.
	if NackHoldoff(g, 4)-AggregationWindow(g, 4) != g {
		t.Error("hold-off is not aggregation window + GRTT")
	}
}

// TestBackoffGroup: a receiver is timed as one of those that lack as much
// of a block: about group × P(Poisson(64 × 1.5%) >= erasures).
func TestBackoffGroup(t *testing.T) {
	const group, k, p = 1000.0, 64, 0.015
	mu := k * p
	poissonTail := func(c int) float64 {
		s, term := 0.0, math.Exp(-mu)
		for i := 0; i < c; i++ {
			s += term
			term *= mu / float64(i+1)
		}
		return 1 - s
	}
	prev := group
	for c := 1; c <= 5; c++ {
		got, want := BackoffGroup(group, k, p, c), group*poissonTail(c)
		if math.Abs(got-want) > 1e-6*want {
			t.Errorf("%d erasures: group %.4g, want %.4g", c, got, want)
		}
		if got >= prev {
			t.Errorf("%d erasures: group %.4g, not below %.4g for one fewer", c, got, prev)
		}
		prev = got
	}
	// Rarer than one receiver in the group by chance: shared by many, the
	// more the rarer; a whole block missed counts as missed by all.
	if g6, g8 := BackoffGroup(group, k, p, 6), BackoffGroup(group, k, p, 8); !(g6 < g8 && g8 < group) {
		t.Errorf("6 and 8 erasures: groups %.4g and %.4g, want growing below %v", g6, g8, group)
	}
	for _, tc := range []struct {
		name string
		got  float64
	}{
		{"whole block", BackoffGroup(group, k, p, k)},
		{"no erasures", BackoffGroup(group, k, p, 0)},
		{"no loss seen", BackoffGroup(group, k, 0, 3)},
		{"at most the mean", BackoffGroup(group, k, 0.5, 20)},
		{"NaN loss", BackoffGroup(group, k, math.NaN(), 3)},
	} {
		if tc.got != group {
			t.Errorf("%s: group %v, want %v", tc.name, tc.got, group)
		}
	}
	if g := BackoffGroup(0.5, k, p, 3); g != 1 {
		t.Errorf("group below 1: %v", g)
	}
	if g := BackoffGroup(group, 1<<16, 1e-9, 1<<16); g < 1 || g > group {
		t.Errorf("huge block: group %v outside [1, %v]", g, group)
	}
	// BackoffDelay is BackoffFraction of the window.
	for _, u := range []float64{0, 0.1, 0.5, 0.99, 1} {
		d := BackoffDelay(u, time.Second, 300)
		if f := BackoffFraction(u, 300); math.Abs(float64(d)-f*float64(time.Second)) > 1 {
			t.Errorf("u=%v: delay %v, fraction %v", u, d, f)
		}
	}
	if BackoffFraction(0.5, 10) >= BackoffFraction(0.5, 1000) {
		t.Error("a larger group does not wait longer for the same draw")
	}
}
