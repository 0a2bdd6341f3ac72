package main

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchRTP runs a short "bench rtp" (simulated, seeded) and checks
// its line: with 5 % loss, a 20 ms round trip and a 200 ms budget, at
// least 99.9 % of the messages arrive in time, FEC repairs some, and the
// latency added stays within the budget.
func TestBenchRTP(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"rtp", "--receivers", "4", "--duration", "2s", "--loss", "5%"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	m := regexp.MustCompile(`^rtp: loss=5% rtt=20ms latency=200ms on_time=([0-9.]+) fec_recovered=(\d+) nack_recovered=\d+ lost=(\d+) p99_added_ms=(\d+) repair_overhead=[0-9.]+\n$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("unexpected output %q", out.String())
	}
	onTime, _ := strconv.ParseFloat(m[1], 64)
	fec, _ := strconv.Atoi(m[2])
	p99, _ := strconv.Atoi(m[4])
	if onTime < 0.999 || fec == 0 || p99 > 200 {
		t.Fatalf("on_time %v, fec_recovered %d, p99 added %d ms: %s", onTime, fec, p99, out.String())
	}
}
