//go:build !unix

package session_test

import "time"

// cpuTime is not measured here; the loopback tests skip anyway.
func cpuTime() time.Duration { return 0 }
