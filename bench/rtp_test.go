package main

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchRTP runs short "bench rtp" runs (simulated, seeded) with the
// default FEC and NACK settings and checks their lines against the
// issue's targets with a 200 ms budget: with 5 % loss and a 20 ms round
// trip at least 99.9 % of the messages arrive in time; with 10 % loss and
// a 50 ms round trip at least 99 % (the old defaults, 4 parity symbols
// and a back-off factor of 1, reached 95 % here); FEC repairs some, and
// the latency added stays within the budget.
func TestBenchRTP(t *testing.T) {
	for _, c := range []struct {
		loss, rtt, duration string
		want                float64
	}{
		{"5%", "20ms", "2s", 0.999},
		{"10%", "50ms", "8s", 0.99},
	} {
		var out bytes.Buffer
		if code := run([]string{"rtp", "--receivers", "4", "--duration", c.duration, "--loss", c.loss, "--rtt", c.rtt}, &out, io.Discard); code != 0 {
			t.Fatalf("exit %d", code)
		}
		m := regexp.MustCompile(`^rtp: loss=` + c.loss + ` rtt=` + c.rtt + ` latency=200ms on_time=([0-9.]+) fec_recovered=(\d+) nack_recovered=\d+ lost=(\d+) p99_added_ms=(\d+) repair_overhead=[0-9.]+\n$`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("unexpected output %q", out.String())
		}
		onTime, _ := strconv.ParseFloat(m[1], 64)
		fec, _ := strconv.Atoi(m[2])
		p99, _ := strconv.Atoi(m[4])
		if onTime < c.want || fec == 0 || p99 > 200 {
			t.Errorf("on_time %v (want >= %v), fec_recovered %d, p99 added %d ms: %s", onTime, c.want, fec, p99, out.String())
		}
	}
}
