//go:build unix

package main

import "syscall"

// processCPU returns this process's user+system CPU seconds: with the
// lab's receivers in processes of their own, that is the sender's.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
