package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestDebugTracer: --log-level debug installs a tracer that logs NACKs,
// repairs, GRTT and rate changes; other levels install none.
func TestDebugTracer(t *testing.T) {
	if debugTracer("info", nil) != nil {
		t.Fatal("tracer at level info")
	}
	var buf bytes.Buffer
	_, log, err := newLogger("debug", &buf)
	if err != nil {
		t.Fatal(err)
	}
	tr := debugTracer("debug", log)
	tr.NackSent(netip.MustParseAddrPort("239.1.1.1:1"), 40)
	tr.NackReceived(netip.MustParseAddrPort("10.0.0.2:1"), 0x0a000002)
	tr.RepairsSent(3)
	tr.GRTTChanged(5 * time.Millisecond)
	tr.RateChanged(1e6)
	out := buf.String()
	for _, want := range []string{"NACK sent", "NACK received", "0a000002", "repairs sent", "GRTT changed", "rate changed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
