package main

import (
	"fmt"
	"io"

	"github.com/shoalnet/shoal/internal/simrun"
)

// runSimHostile runs sc clean and then beside its hostile node, and ends
// with exactly one line:
//
//	hostile: kind=K receivers=N delivered=D/N byte_exact=B clean_virtual_s=C virtual_s=V ratio=V/C clean_wall_s=X wall_s=W hostile_packets=P
//
// It exits non-zero unless every receiver got every byte intact in both
// runs and V is at most twice C. The wall times show the work the attack
// costs the engines, which virtual time does not model.
func runSimHostile(sc simrun.Scenario, stdout, stderr io.Writer) int {
	r, err := simrun.RunHostile(sc)
	if err != nil {
		fmt.Fprintf(stderr, "bench sim: %v\n", err)
		return 2
	}
	exact := true
	for _, res := range []simrun.Result{r.Clean, r.Hostile} {
		for _, e := range res.Errors {
			fmt.Fprintf(stderr, "bench sim: %s\n", e)
		}
		exact = exact && len(res.Errors) == 0 && res.Delivered == sc.Receivers
	}
	fmt.Fprintf(stderr, "bench sim: hostile sender=%+v\n", r.Hostile.Sender)
	if len(r.Hostile.Receivers) > 0 {
		fmt.Fprintf(stderr, "bench sim: hostile receiver 0=%+v\n", r.Hostile.Receivers[0])
	}
	ratio := 0.0
	if r.Clean.Virtual > 0 {
		ratio = r.Hostile.Virtual.Seconds() / r.Clean.Virtual.Seconds()
	}
	fmt.Fprintf(stdout, "hostile: kind=%s receivers=%d delivered=%d/%d byte_exact=%v clean_virtual_s=%.3f virtual_s=%.3f ratio=%.2f clean_wall_s=%.2f wall_s=%.2f hostile_packets=%d\n",
		sc.Hostile, sc.Receivers, r.Hostile.Delivered, sc.Receivers, exact, r.Clean.Virtual.Seconds(), r.Hostile.Virtual.Seconds(),
		ratio, r.CleanWall.Seconds(), r.HostileWall.Seconds(), r.Hostile.HostileSent)
	if !exact || ratio > 2 {
		return 1
	}
	return 0
}
