package session

import (
	"context"
	"encoding/binary"
	"unsafe"
)

var bgCtx = context.Background()

// unsafePointer converts for the control-message header, which the kernel
// reads in host layout.
func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }

// putUint16Native writes v in host byte order, as socket options are.
func putUint16Native(b []byte, v uint16) { binary.NativeEndian.PutUint16(b, v) }
