module github.com/shoalnet/shoal

go 1.26

require (
	github.com/gopacket/gopacket v1.7.7
	github.com/klauspost/reedsolomon v1.14.2
)

require (
	github.com/klauspost/cpuid/v2 v2.3.0 // indirect
	golang.org/x/net v0.55.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
