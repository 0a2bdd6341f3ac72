// Package interop holds Shoal's interoperability tests against the
// reference NORM implementation (NRL NORM, Debian's libnorm-dev). The peer
// program in normpeer/ is built against the library at test time; the tests
// run it and Shoal sessions on hosts of a private network-namespace lab
// (package internal/lab) and compare what arrives byte for byte. They need
// root, g++ and libnorm-dev, and skip with a message saying which is
// missing.
package interop
