package session

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/shoalnet/shoal/sender"
)

func streamObject() *Object {
	return newObject(nil, ObjectInfo{Kind: KindStream})
}

// readErr runs Read in the background and returns its error, or fails the
// test if Read does not return within a second.
func readErr(t *testing.T, o *Object, act func()) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := o.Read(make([]byte, 10)); done <- err }()
	time.Sleep(20 * time.Millisecond) // Read is blocked by now
	act()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		t.Fatal("Read still blocked")
		return nil
	}
}

// TestObjectCloseWakesRead: Close makes a blocked Read return ErrClosed,
// and every Read after it. Read used to block until the stream ended.
func TestObjectCloseWakesRead(t *testing.T) {
	o := streamObject()
	if err := readErr(t, o, func() { o.Close() }); !errors.Is(err, ErrClosed) {
		t.Fatalf("blocked Read after Close: %v", err)
	}
	o.streamData([]byte("late"))
	if _, err := o.Read(make([]byte, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

// TestObjectReadDeadline: Read honours SetReadDeadline, set before or
// while it blocks, with net.Conn's error.
func TestObjectReadDeadline(t *testing.T) {
	o := streamObject()
	err := readErr(t, o, func() { o.SetReadDeadline(time.Now().Add(30 * time.Millisecond)) })
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past its deadline: %v", err)
	}
	o.streamData([]byte("abc"))
	o.SetReadDeadline(time.Time{})
	if n, err := o.Read(make([]byte, 10)); n != 3 || err != nil {
		t.Fatalf("Read without deadline: %d, %v", n, err)
	}
}

// TestReadNotStream: Read on a data object reports ErrNotStream.
func TestReadNotStream(t *testing.T) {
	o := newObject(nil, ObjectInfo{Kind: KindData})
	if _, err := o.Read(make([]byte, 1)); !errors.Is(err, ErrNotStream) {
		t.Fatalf("Read on a data object: %v", err)
	}
}

// TestStreamOverflowReported: data dropped for a slow reader reads as a
// gap that matches ErrStreamOverflow (and ErrDataLost); a gap the network
// caused matches only ErrDataLost. Overflows used to be indistinguishable.
func TestStreamOverflowReported(t *testing.T) {
	defer func(n int) { maxStreamBuffer = n }(maxStreamBuffer)
	maxStreamBuffer = 10
	o := streamObject()
	o.streamData([]byte("0123456789"))
	o.streamData([]byte("dropped"))
	o.streamData([]byte("x")) // still no room
	buf := make([]byte, 100)
	if n, err := o.Read(buf); n != 10 || err != nil {
		t.Fatalf("first Read: %d, %v", n, err)
	}
	_, err := o.Read(buf)
	var g *GapError
	if !errors.As(err, &g) || g.Lost != 8 || !errors.Is(err, ErrStreamOverflow) || !errors.Is(err, ErrDataLost) {
		t.Fatalf("overflow read as %v", err)
	}
	o.streamGap(5)
	if _, err := o.Read(buf); !errors.Is(err, ErrDataLost) || errors.Is(err, ErrStreamOverflow) {
		t.Fatalf("network gap read as %v", err)
	}
}

// TestSkipGapsWithCopy: with SetSkipGaps, io.Copy reads a stream with
// gaps to its end, without the lost bytes, and LostBytes counts them.
// io.Copy used to stop at the first gap.
func TestSkipGapsWithCopy(t *testing.T) {
	o := streamObject()
	o.SetSkipGaps(true)
	o.streamData([]byte("abc"))
	o.streamGap(100)
	o.streamData([]byte("def"))
	o.streamGap(20)
	o.streamGap(3)
	o.streamData([]byte("g"))
	o.finish(nil, nil)
	var out bytes.Buffer
	if _, err := io.Copy(&out, o); err != nil {
		t.Fatalf("io.Copy: %v", err)
	}
	if out.String() != "abcdefg" || o.LostBytes() != 123 {
		t.Fatalf("read %q, lost %d", out.String(), o.LostBytes())
	}
}

// TestFlushModeZeroIsPassive: StreamOptions' zero flush mode is passive
// (it used to be FlushNone unless FlushSet was true), and the modes map to
// the engine's.
func TestFlushModeZeroIsPassive(t *testing.T) {
	var opt StreamOptions
	for m, want := range map[FlushMode]sender.FlushMode{opt.Flush: sender.FlushPassive,
		FlushActive: sender.FlushActive, FlushNone: sender.FlushNone} {
		if got := m.engine(); got != want {
			t.Errorf("mode %d: engine mode %d, want %d", m, got, want)
		}
	}
}
