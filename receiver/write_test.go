package receiver

import (
	"bytes"
	"io"
	"testing"

	"github.com/shoalnet/shoal/fec"
)

// recordWriter keeps what was written and counts the writes.
type recordWriter struct {
	b     []byte
	calls int
}

func (w *recordWriter) WriteAt(p []byte, off int64) (int, error) {
	w.calls++
	copy(w.b[off:], p)
	return len(p), nil
}

// TestBlockOneWrite: a block whose symbols all arrived goes to the sink in
// one write, not one per packet (a syscall each for a file); a block
// rebuilt from parity is written whole and right as well.
func TestBlockOneWrite(t *testing.T) {
	const size = 750 // 8 segments of 100 (the last 50), blocks of 4
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>8)
	}
	w := &recordWriter{b: make([]byte, size)}
	r := newRx(t, Config{Sink: func(ObjectInfo) (io.WriterAt, error) { return w, nil }})
	p := &pkt{inst: 1}
	for i := range 4 {
		handle(t, r, t0, p.data(t, 1, size, 0, uint16(i), want[i*100:(i+1)*100]))
	}
	if w.calls != 1 {
		t.Fatalf("complete block written in %d calls, want 1", w.calls)
	}
	// Block 1 loses its symbols 1 and 2; the two parity symbols rebuild them.
	codec, err := fec.RS8(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	src := make([][]byte, 4)
	for i := range src {
		src[i] = make([]byte, 100)
		copy(src[i], want[400+i*100:min(size, 500+i*100)])
	}
	parity := [][]byte{make([]byte, 100), make([]byte, 100)}
	if err := codec.Encode(src, parity); err != nil {
		t.Fatal(err)
	}
	handle(t, r, t0, p.data(t, 1, size, 1, 0, want[400:500]))
	handle(t, r, t0, p.data(t, 1, size, 1, 3, want[700:]))
	handle(t, r, t0, p.data(t, 1, size, 1, 4, parity[0]))
	handle(t, r, t0, p.data(t, 1, size, 1, 5, parity[1]))
	if !bytes.Equal(w.b, want) {
		t.Fatalf("object written wrong:\n got %x\nwant %x", w.b, want)
	}
	if w.calls > 1+4 {
		t.Fatalf("%d writes for two blocks", w.calls)
	}
	if len(find(events(r), EventCompleted)) != 1 {
		t.Fatal("object not complete")
	}
}

// TestShortSymbolsZeroFilled: a symbol keeps only the bytes its packet
// carried (a forged tiny packet must not cost a clear of the symbol
// length it claims), and the part that did not arrive reads as zeros
// where the symbol is used whole, as by the FEC code: never what an
// earlier object left in a reused block buffer.
func TestShortSymbolsZeroFilled(t *testing.T) {
	const size2 = 310 // segments of 100, 100, 100 and 10: one block
	w := &recordWriter{b: make([]byte, size2)}
	r := newRx(t, Config{Sink: func(info ObjectInfo) (io.WriterAt, error) {
		if info.Object == 2 {
			return w, nil
		}
		return nil, nil
	}})
	p := &pkt{inst: 1}
	dirty := bytes.Repeat([]byte{0xaa}, 100)
	for i := range 4 { // object 1 fills a block buffer with 0xaa, then frees it
		handle(t, r, t0, p.data(t, 1, 400, 0, uint16(i), dirty))
	}
	events(r)
	want := make([]byte, size2)
	for i := range want {
		want[i] = byte(i*13 + 1)
	}
	codec, err := fec.RS8(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	src := make([][]byte, 4)
	for i := range src {
		src[i] = make([]byte, 100) // the short last symbol, zero-filled
		copy(src[i], want[i*100:min(size2, (i+1)*100)])
	}
	parity := [][]byte{make([]byte, 100), make([]byte, 100)}
	if err := codec.Encode(src, parity); err != nil {
		t.Fatal(err)
	}
	// Symbol 1 is lost: rebuilding it takes the short symbol 3 whole.
	handle(t, r, t0, p.data(t, 2, size2, 0, 0, want[:100]))
	handle(t, r, t0, p.data(t, 2, size2, 0, 2, want[200:300]))
	handle(t, r, t0, p.data(t, 2, size2, 0, 3, want[300:]))
	handle(t, r, t0, p.data(t, 2, size2, 0, 4, parity[0]))
	if !bytes.Equal(w.b, want) {
		t.Fatalf("object 2 written as\n%x\nwant\n%x", w.b, want)
	}
}
