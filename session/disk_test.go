package session

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoalnet/shoal/receiver"
)

type memAt struct{ b []byte }

func (m *memAt) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	copy(m.b[off:], p)
	return len(p), nil
}

// TestDiskBlockSpares: a block handed over with its buffer is written
// from that buffer, which then comes back to the engine as the spare for
// a later block; until one has come back, the engine gets a new buffer as
// big as the one it gave.
func TestDiskBlockSpares(t *testing.T) {
	s := &Session{}
	s.disk = newDiskWriter(s)
	w := &memAt{}
	a := &asyncSink{s: s, w: w}
	buf := []byte("0123456789abcdef")
	spare, err := a.WriteBlock(buf, []receiver.Piece{{Off: 8, B: buf[:8]}, {Off: 0, B: buf[8:]}})
	if err != nil || len(spare) != len(buf) || &spare[0] == &buf[0] {
		t.Fatalf("first spare: %d bytes, err %v (want a new buffer of %d)", len(spare), err, len(buf))
	}
	// Wait for the disk writer to be done with it.
	for i := 0; ; i++ {
		s.disk.mu.Lock()
		n := len(s.disk.spares)
		s.disk.mu.Unlock()
		if n > 0 {
			break
		}
		if i == 5000 {
			t.Fatal("the block's buffer never came back")
		}
		time.Sleep(time.Millisecond)
	}
	if string(w.b) != "89abcdef01234567" {
		t.Fatalf("written %q", w.b)
	}
	again, _ := a.WriteBlock(bytes.Repeat([]byte{1}, 16), nil)
	if &again[0] != &buf[0] {
		t.Fatal("the written block's buffer did not come back as a spare")
	}
	s.disk.close()
	<-s.disk.exited
}
