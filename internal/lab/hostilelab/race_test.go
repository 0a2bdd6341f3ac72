//go:build race

package hostilelab

const raceEnabled = true
