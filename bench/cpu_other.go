//go:build !unix

package main

// processCPU is not measured on this platform (bench lab needs Linux).
func processCPU() float64 { return 0 }
