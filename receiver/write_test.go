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

// takingSink is a BlockSink that keeps the buffers it takes and reads
// them only at the end, as a sink writing on another goroutine would, and
// hands back spares full of junk.
type takingSink struct {
	pieces  []Piece
	writes  int // WriteAt calls
	blocks  int
	outside int // pieces not in the buffer given
}

// inside reports whether b is a slice of buf.
func inside(buf, b []byte) bool {
	buf = buf[:cap(buf)]
	for i := range buf {
		if &buf[i] == &b[0] {
			return i+len(b) <= len(buf)
		}
	}
	return false
}

func (s *takingSink) WriteAt(p []byte, off int64) (int, error) { s.writes++; return len(p), nil }

func (s *takingSink) WriteBlock(buf []byte, pieces []Piece) ([]byte, error) {
	s.blocks++
	for _, p := range pieces {
		if !inside(buf, p.B) {
			s.outside++
		}
	}
	s.pieces = append(s.pieces, pieces...)
	spare := bytes.Repeat([]byte{0xee}, 250)
	if s.blocks%2 == 0 {
		spare = nil
	}
	return spare, nil
}

func (s *takingSink) contents(size int) []byte {
	b := make([]byte, size)
	for _, p := range s.pieces {
		copy(b[p.Off:], p.B)
	}
	return b
}

// TestBlockSinkTakesBuffer: a BlockSink gets every block's buffer, with
// the data right however the block arrived, and the receiver never writes
// into a buffer it gave away (the sink reads them only at the end), nor
// counts on the spares it gets back being clean or big enough.
func TestBlockSinkTakesBuffer(t *testing.T) {
	const size = 1950 // 20 segments of 100 (the last 50), blocks of 4
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + i>>8)
	}
	sk := &takingSink{}
	r := newRx(t, Config{Sink: func(ObjectInfo) (io.WriterAt, error) { return sk, nil }})
	p := &pkt{inst: 1}
	codec, err := fec.RS8(4, 2)
	if err != nil {
		t.Fatal(err)
	}
	for b := range 5 {
		src := make([][]byte, 4)
		for i := range src {
			src[i] = make([]byte, 100)
			copy(src[i], want[min(size, b*400+i*100):min(size, b*400+(i+1)*100)])
		}
		parity := [][]byte{make([]byte, 100), make([]byte, 100)}
		if err := codec.Encode(src, parity); err != nil {
			t.Fatal(err)
		}
		seg := func(i int) []byte { return want[b*400+i*100 : min(size, b*400+(i+1)*100)] }
		switch b % 3 {
		case 0: // all in order
			for i := range 4 {
				handle(t, r, t0, p.data(t, 1, size, uint32(b), uint16(i), seg(i)))
			}
		case 1: // out of order, one lost and rebuilt
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 3, seg(3)))
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 4, parity[0]))
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 0, seg(0)))
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 1, seg(1)))
		case 2: // two lost, rebuilt
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 0, seg(0)))
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 5, parity[1]))
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 4, parity[0]))
			handle(t, r, t0, p.data(t, 1, size, uint32(b), 2, seg(2)))
		}
	}
	if len(find(events(r), EventCompleted)) != 1 {
		t.Fatal("object not complete")
	}
	if sk.writes != 0 || sk.blocks != 5 || sk.outside != 0 {
		t.Fatalf("%d WriteAt calls, %d blocks taken, %d pieces outside their buffer; want 0, 5, 0", sk.writes, sk.blocks, sk.outside)
	}
	if got := sk.contents(size); !bytes.Equal(got, want) {
		t.Fatalf("object taken wrong:\n got %x\nwant %x", got, want)
	}
}

// TestProvenWholeBuffers: a block of an object that has written a block,
// or taken in a block's worth of symbols, gets its whole buffer at once; one of an object not proven yet starts
// small and grows with the symbols that arrive (a forged packet costs its
// own size), and so does one kept by reference.
func TestProvenWholeBuffers(t *testing.T) {
	const n, symLen = 6, 4000
	var p bufPool
	var work uint64
	if bb := p.get(0, n, symLen, false, false, false, false, &work); bb.room(0, symLen) == nil || cap(bb.buf) >= n*symLen {
		t.Fatalf("unproven block took %d bytes at its first symbol", cap(bb.buf))
	}
	if bb := p.get(1, n, symLen, false, false, false, true, &work); cap(bb.buf) != n*symLen {
		t.Fatalf("proven block has %d bytes of buffer, want %d", cap(bb.buf), n*symLen)
	}
	if bb := p.get(2, n, symLen, true, false, false, true, &work); cap(bb.buf) != 0 {
		t.Fatalf("shared-payload block has %d bytes of buffer", cap(bb.buf))
	}
	// Writing a block proves the object.
	w := &recordWriter{b: make([]byte, 400)}
	r := newRx(t, Config{Sink: func(ObjectInfo) (io.WriterAt, error) { return w, nil }})
	pk := &pkt{inst: 1}
	handle(t, r, t0, pk.data(t, 1, 800, 0, 0, make([]byte, 100)))
	o := r.remotes[0].objs[0]
	if o.proven {
		t.Fatal("object proven before a block was written")
	}
	for i := 1; i < 4; i++ {
		handle(t, r, t0, pk.data(t, 1, 800, 0, uint16(i), make([]byte, 100)))
	}
	if !o.proven {
		t.Fatal("object not proven after a block was written")
	}
	// So do a whole block's worth of symbols (4+2) spread over blocks
	// none of which is complete, as under heavy loss.
	for b := range 6 {
		handle(t, r, t0, pk.data(t, 2, 3200, uint32(b), 0, make([]byte, 100)))
		o2 := r.remotes[0].objs[1]
		if o2.proven != (b == 5) {
			t.Fatalf("after %d symbols of object 2: proven %v", b+1, o2.proven)
		}
	}
}
