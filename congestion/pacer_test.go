package congestion

import (
	"testing"
	"time"
)

// TestPacerRate sends as fast as the pacer allows for ten virtual seconds
// and checks the average rate and the burst bound.
func TestPacerRate(t *testing.T) {
	const rate, mtu = 1e6, 1400 // bytes/s
	p := NewPacer(rate, 0, mtu)
	now := time.Unix(100, 0)
	end := now.Add(10 * time.Second)
	sent, maxBurst, burst := 0, 0, 0
	for now.Before(end) {
		if p.Allow(now, mtu) {
			sent += mtu
			burst++
			continue
		}
		if burst > maxBurst {
			maxBurst = burst
		}
		burst = 0
		next := p.Next(now, mtu)
		if !next.After(now) {
			t.Fatalf("Next(%v) = %v after a refusal", now, next)
		}
		now = next
	}
	got := float64(sent) / 10
	if got < rate*0.99 || got > rate*1.01+DefaultBurstPackets*mtu/10 {
		t.Fatalf("rate %v B/s, want about %v", got, rate)
	}
	if maxBurst > DefaultBurstPackets {
		t.Fatalf("burst of %d packets, bucket holds %d", maxBurst, DefaultBurstPackets)
	}
}

func TestPacerZeroAndChange(t *testing.T) {
	p := NewPacer(0, 1400, 1400)
	now := time.Unix(0, 0)
	if !p.Allow(now, 1400) {
		t.Fatal("full bucket refused a packet")
	}
	if p.Allow(now.Add(time.Hour), 1400) {
		t.Fatal("zero rate refilled the bucket")
	}
	p.SetRate(1400)
	if n := p.Next(now.Add(time.Hour), 1400); n.Sub(now.Add(time.Hour)) != time.Second {
		t.Fatalf("at 1400 B/s a 1400-byte packet waits %v, want 1s", n.Sub(now.Add(time.Hour)))
	}
}
