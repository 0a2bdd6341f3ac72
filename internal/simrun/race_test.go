//go:build race

package simrun

// raceEnabled: the race detector slows the simulations tenfold; the
// longest ones are left to runs without it.
const raceEnabled = true
