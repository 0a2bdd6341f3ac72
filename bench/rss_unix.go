//go:build unix

package main

import (
	"runtime"
	"syscall"
)

// peakRSSMiB returns the largest resident set this process has had, in MiB.
func peakRSSMiB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	kib := float64(ru.Maxrss) // KiB on Linux, bytes on the BSDs and macOS
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		kib /= 1024
	}
	return kib / 1024
}
