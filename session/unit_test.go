package session

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/sender"
)

func TestCheckGroup(t *testing.T) {
	cases := map[string]error{
		"239.255.1.1:6003":      nil,
		"224.0.0.1:6003":        ErrReservedGroup,
		"224.0.0.251:5353":      ErrReservedGroup,
		"224.0.1.1:6003":        nil,
		"10.0.0.1:6003":         ErrNotMulticast,
		"[ff15::1]:6003":        nil,
		"[ff02::1]:6003":        ErrReservedGroup,
		"[ff02::1:ff00:1]:6003": ErrReservedGroup,
		"[ff02::6003]:6003":     nil,
		"[ff02::fb]:5353":       ErrReservedGroup,
		"[ff02::1:2]:547":       ErrReservedGroup,
		"[::1]:6003":            ErrNotMulticast,
	}
	for g, want := range cases {
		err := checkGroup(netip.MustParseAddrPort(g), false)
		if !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", g, err, want)
		}
	}
	if err := checkGroup(netip.MustParseAddrPort("224.0.0.1:6003"), true); err != nil {
		t.Errorf("AllowReserved did not allow: %v", err)
	}
	if err := checkGroup(netip.MustParseAddrPort("239.1.1.1:0"), false); err == nil {
		t.Error("port 0 accepted")
	}
}

func TestMACCollisions(t *testing.T) {
	a := netip.MustParseAddr("239.1.1.1")
	b := netip.MustParseAddr("224.129.1.1") // same low 23 bits
	c := netip.MustParseAddr("239.1.1.2")
	got := MACCollisions([]netip.Addr{a, b, c})
	if len(got) != 1 || got[0] != [2]netip.Addr{a, b} {
		t.Fatalf("collisions %v, want only 239.1.1.1/224.129.1.1", got)
	}
}

func TestSafePath(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, ok := range map[string]bool{
		"a.bin": true, "real/b.bin": true, "new/dir/c.bin": true,
		"": false, "/etc/passwd": false, "../x": false, "a/../../x": false, "a//b": false, "./a": false,
		"link/passwd": false, "link": false, "file/x": false, "a\\b": false, "a\x00b": false,
		string(make([]byte, 300)): false,
	} {
		p, err := SafePath(dir, name)
		if ok != (err == nil) {
			t.Errorf("%q: %q, %v", name, p, err)
		}
		if rel, rerr := filepath.Rel(dir, p); err == nil && (rerr != nil || strings.HasPrefix(rel, "..")) {
			t.Errorf("%q resolved outside dir: %q", name, p)
		}
	}
}

func TestLossInjection(t *testing.T) {
	const n = 200_000
	for _, c := range []Loss{{Rate: 0.05}, {Rate: 0.1, BurstLen: 4}} {
		l := newLoss(c, 7, 1)
		drops, bursts, prev := 0, 0, false
		for range n {
			d := l.drop()
			if d {
				drops++
				if !prev {
					bursts++
				}
			}
			prev = d
		}
		rate := float64(drops) / n
		if math.Abs(rate-c.Rate) > 0.1*c.Rate {
			t.Errorf("%+v: loss %.4f", c, rate)
		}
		if c.BurstLen > 1 {
			if mean := float64(drops) / float64(bursts); math.Abs(mean-c.BurstLen) > 0.5 {
				t.Errorf("%+v: mean burst %.2f", c, mean)
			}
		}
		// The same seed gives the same losses.
		a, b := newLoss(c, 9, 1), newLoss(c, 9, 1)
		for range 1000 {
			if a.drop() != b.drop() {
				t.Fatalf("%+v: same seed, different losses", c)
			}
		}
	}
	if newLoss(Loss{}, 1, 1).drop() {
		t.Fatal("zero loss dropped")
	}
}

// TestDefaultRate: a session without a rate sends at 10 MB/s, but under
// congestion control it leaves the start rate to the controller, and an
// explicit rate is the start rate.
func TestDefaultRate(t *testing.T) {
	cases := []struct {
		cfg  sender.Config
		want float64
	}{
		{sender.Config{}, 10e6},
		{sender.Config{Rate: 3e6}, 3e6},
		{sender.Config{CC: &congestion.Config{}}, 125e3},
		{sender.Config{CC: &congestion.Config{StartRate: 2e6}}, 2e6},
		{sender.Config{CC: &congestion.Config{StartRate: 2e6}, Rate: 5e5}, 5e5},
	}
	for i, c := range cases {
		s := &Session{cfg: Config{Sender: c.cfg}, node: 1}
		tx, err := s.txLocked()
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got := tx.Stats().Rate; got != c.want {
			t.Errorf("case %d (rate %v, CC %v): starts at %v B/s, want %v", i, c.cfg.Rate, c.cfg.CC != nil, got, c.want)
		}
	}
}
