//go:build race

package nack

// The race detector's instrumentation allocates, so allocation counts are
// only meaningful without it.
const raceEnabled = true
