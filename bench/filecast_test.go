package main

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5}, 5},
		{[]float64{1, math.Inf(1), math.Inf(1)}, math.Inf(1)},
	} {
		in := append([]float64(nil), c.in...)
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
		for i := range in {
			if in[i] != c.in[i] {
				t.Errorf("median reordered its input: %v", c.in)
			}
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
}

func TestSummarizeCountsFailuresAsForever(t *testing.T) {
	const size = 64 << 20
	gib := 2 * float64(size) / (1 << 30)
	runs := []castRun{
		{took: 2 * time.Second, rxCPU: 0.5, exitAfter: 100 * time.Millisecond},
		{err: errors.New("timed out")},
		{took: time.Second, rxCPU: 0.25, exitAfter: 300 * time.Millisecond},
	}
	g, cpu, exit := summarize(runs, size, gib)
	// Times 1 s, 2 s, ∞: the median is 2 s.
	if want := float64(size) * 8 / 2 / 1e6; math.Abs(g-want) > 1e-9 {
		t.Errorf("goodput %v, want %v", g, want)
	}
	// CPU and exit over the completed runs only: means of two.
	if want := (0.5 + 0.25) / 2 / gib; math.Abs(cpu-want) > 1e-9 {
		t.Errorf("cpu %v, want %v", cpu, want)
	}
	if math.Abs(exit-0.2) > 1e-9 {
		t.Errorf("exit %v, want 0.2", exit)
	}
	runs[0].err = errors.New("failed")
	if g, _, _ := summarize(runs, size, gib); g != 0 {
		t.Errorf("two of three runs failed, yet goodput %v", g)
	}
}

func TestCastLine(t *testing.T) {
	c := castLine{Receivers: 2, Size: 64 << 20, Loss: 0.01, Goodput: 400, UFTP: 700, Libnorm: 350,
		ExitAfter: 1.234, RxCPU: 3.456, UFTPCPU: 5}
	want := "filecast: receivers=2 size=64MiB loss=1% goodput_mbps=400 uftp_mbps=700 libnorm_mbps=350 ratio=0.57 sender_exit_after_s=1.23 rx_cpu_s_per_gib=3.46 uftp_rx_cpu_s_per_gib=5.00"
	if got := c.String(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A skipped peer prints "-" and leaves the ratio to the other.
	c.UFTP, c.UFTPCPU = math.NaN(), math.NaN()
	got := c.String()
	for _, f := range []string{" uftp_mbps=- ", " ratio=1.14 ", " uftp_rx_cpu_s_per_gib=-"} {
		if !strings.Contains(got, f) {
			t.Errorf("%q lacks %q", got, f)
		}
	}
	// No peer at all: no ratio.
	c.Libnorm = math.NaN()
	if got := c.String(); !strings.Contains(got, " ratio=- ") {
		t.Errorf("%q: ratio without a peer", got)
	}
	c.CC, c.Loss = true, 0.1
	if got := c.String(); !strings.Contains(got, " loss=10% cc=on goodput_mbps=") {
		t.Errorf("%q does not mark congestion control", got)
	}
}

func TestIgmpHas(t *testing.T) {
	if g := igmpGroup(netip.MustParseAddr("239.255.13.1")); g != "010DFFEF" && g != "EFFF0D01" {
		t.Errorf("igmpGroup = %s", g)
	}
	listing := "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n" +
		"1\tlo        :     1      V3\n" +
		"\t\t\t\t010CFFEF     1 0:00000000\t\t0\n" +
		"2\tlab0      :     2      V3\n" +
		"\t\t\t\t010DFFEF     1 0:00000000\t\t0\n" +
		"\t\t\t\t010000E0     1 0:00000000\t\t0\n"
	for _, c := range []struct {
		iface, group string
		want         bool
	}{
		{"lab0", "010DFFEF", true},
		{"lab0", "010000E0", true},
		{"lab0", "010CFFEF", false}, // joined on lo only
		{"lo", "010CFFEF", true},
		{"eth0", "010DFFEF", false},
	} {
		if got := igmpHas(listing, c.iface, c.group); got != c.want {
			t.Errorf("igmpHas(%s, %s) = %v, want %v", c.iface, c.group, got, c.want)
		}
	}
}
