//go:build race

package interop

// raceEnabled: the race detector slows the Go side several times; the
// largest stream test sends less under it.
const raceEnabled = true
