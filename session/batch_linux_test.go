package session

import (
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestMmsghdrLayout: the mmsghdr handed to recvmmsg has the kernel's size
// and layout for the architecture the test is compiled for: struct msghdr,
// then the unsigned int length, padded to pointer alignment (64 bytes on
// 64-bit Linux, 32 on 32-bit). The same is asserted at compile time in
// batch_linux.go, which is what covers the 32-bit architectures this
// machine cannot run (GOARCH=386 or arm go vet ./session compiles this
// test too).
func TestMmsghdrLayout(t *testing.T) {
	type layout struct{ msghdr, mmsghdr uintptr }
	// sizeof(struct msghdr) and sizeof(struct mmsghdr) in the kernel's
	// uapi for each architecture Go supports on Linux.
	want := map[string]layout{
		"386": {28, 32}, "arm": {28, 32}, "mips": {28, 32}, "mipsle": {28, 32},
		"amd64": {56, 64}, "arm64": {56, 64}, "loong64": {56, 64}, "mips64": {56, 64}, "mips64le": {56, 64},
		"ppc64": {56, 64}, "ppc64le": {56, 64}, "riscv64": {56, 64}, "s390x": {56, 64},
	}
	w, ok := want[runtime.GOARCH]
	if !ok {
		t.Skipf("no kernel sizes recorded for %s", runtime.GOARCH)
	}
	var m mmsghdr
	got := layout{unsafe.Sizeof(unix.Msghdr{}), unsafe.Sizeof(m)}
	if got != w || unsafe.Offsetof(m.len) != w.msghdr || unix.SizeofMsghdr != w.msghdr {
		t.Fatalf("%s: msghdr %d bytes, mmsghdr %d with the length at %d; the kernel has %d, %d and %d",
			runtime.GOARCH, got.msghdr, got.mmsghdr, unsafe.Offsetof(m.len), w.msghdr, w.mmsghdr, w.msghdr)
	}
}
