package simrun

import (
	"testing"
	"time"

	"github.com/shoalnet/shoal/sender"
)

// TestHostile runs every attack of HostileKinds beside a real transfer to
// 10 receivers: the transfer completes byte-exact within twice the time
// the same transfer (same seed) takes without it, and the attack really
// reached the engines. The transfer lasts over a second of virtual time:
// in a much shorter one, the attack's packets change the receivers' random
// NACK back-offs, and one unlucky repair round more can double it.
func TestHostile(t *testing.T) {
	receivers := 10
	if raceEnabled {
		receivers = 3 // the race detector slows the runs tenfold
	}
	base := Scenario{Seed: 18, Receivers: receivers, Loss: 0.01, Limit: time.Minute,
		Objects: []Object{{Size: 256 << 10, File: true}, {Size: 20_000}},
		Sender:  sender.Config{Rate: 5e6, Parity: 16}}
	clean, err := Run(base)
	if err != nil {
		t.Fatal(err)
	}
	if len(clean.Errors) > 0 || clean.Delivered != receivers {
		t.Fatalf("clean run: delivered to %d of %d, errors %v", clean.Delivered, receivers, clean.Errors)
	}
	for _, k := range HostileKinds {
		t.Run(string(k), func(t *testing.T) {
			t.Parallel()
			sc := base
			sc.Hostile = k
			res, err := Run(sc)
			if err != nil {
				t.Fatal(err)
			}
			r := HostileResult{Clean: clean, Hostile: res}
			if len(res.Errors) > 0 || res.Delivered != sc.Receivers {
				t.Fatalf("delivered to %d of %d, errors %v (stop %v)", res.Delivered, sc.Receivers, res.Errors, res.Stop)
			}
			if r.Hostile.Virtual > 2*r.Clean.Virtual {
				t.Fatalf("transfer took %v under %s, %v clean: more than twice", r.Hostile.Virtual, k, r.Clean.Virtual)
			}
			if r.Hostile.HostileSent < 10 {
				t.Fatalf("the hostile node sent only %d packets", r.Hostile.HostileSent)
			}
			// Each attack shows in the counters of the engine it aims at.
			var rx struct{ pkts, evicted, refused, preempted uint64 }
			for _, st := range r.Hostile.Receivers {
				rx.pkts += st.Packets
				rx.evicted += st.SendersEvicted
				rx.refused += st.QuotaRefused
				rx.preempted += st.Preempted
			}
			tx := r.Hostile.Sender
			t.Logf("%s: %v vs %v clean, %d hostile packets; sender %+v; receivers %+v",
				k, r.Hostile.Virtual, r.Clean.Virtual, r.Hostile.HostileSent, tx, rx)
			switch k {
			case HostileNackRange:
				if tx.RepairsClamped == 0 {
					t.Error("no block range clamped")
				}
			case HostileNackStorm:
				if tx.NacksReceived < uint64(r.Hostile.HostileSent)/2 {
					t.Errorf("sender took %d NACKs of the storm's %d packets", tx.NacksReceived, r.Hostile.HostileSent)
				}
			default:
				if rx.pkts < r.Clean.Receivers[0].Packets*10+uint64(r.Hostile.HostileSent) {
					t.Errorf("receivers handled %d packets, the forged ones did not reach them", rx.pkts)
				}
			}
		})
	}
}
