//go:build race

package main

// raceEnabled: the race detector slows filecast sixfold; the largest lab
// cases are scaled down under it to stay within the default suite's time.
const raceEnabled = true
