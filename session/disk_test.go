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

// TestDiskWakeBatched: the disk writer wakes up for data only once a
// batch has gathered (or when kicked), and at once for anything else.
func TestDiskWakeBatched(t *testing.T) {
	s := &Session{}
	s.disk = newDiskWriter(s)
	defer func() {
		s.disk.close()
		<-s.disk.exited
	}()
	w := &memAt{}
	a := &asyncSink{s: s, w: w}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for i := 0; ; i++ {
			s.disk.mu.Lock()
			ok := cond()
			s.disk.mu.Unlock()
			if ok {
				return
			}
			if i == 5000 {
				t.Fatalf("waited 5 s for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	idle := func() bool { return s.disk.idle && len(s.disk.jobs) == 0 }
	a.WriteBlock([]byte("first"), []receiver.Piece{{Off: 0, B: []byte("first")}})
	waitFor("the first block", idle)
	small := []byte("small")
	a.WriteBlock(small, []receiver.Piece{{Off: 100, B: small}})
	time.Sleep(20 * time.Millisecond)
	s.disk.mu.Lock()
	queued := len(s.disk.jobs)
	s.disk.mu.Unlock()
	if queued != 1 || len(w.b) > 100 {
		t.Fatalf("a small block did not wait for more: %d queued, %d bytes written", queued, len(w.b))
	}
	s.disk.kick()
	waitFor("the kicked block", idle)
	if string(w.b[100:]) != "small" {
		t.Fatalf("written %q", w.b[100:])
	}
	big := make([]byte, diskWakeBytes)
	a.WriteBlock(big, []receiver.Piece{{Off: 200, B: big}})
	waitFor("a batch's worth", idle)
	if len(w.b) != 200+diskWakeBytes {
		t.Fatalf("%d bytes written", len(w.b))
	}
	s.disk.put(diskJob{op: diskAbort, sk: a})
	waitFor("an abort", idle)
}
