package main

import (
	"crypto/sha256"
	"hash"
	"io"
	"os"
)

// hashingFile is a received file's temporary file that takes the file's
// SHA-256 as the data is written, so that a finished file need not be
// read back to be checked. Blocks mostly complete in order: a write at
// the hash cursor is hashed from the caller's buffer on its way to the
// file. A write past the cursor is only noted; once the data before it is
// in, it is read back from the file (still in the page cache) and hashed.
// Whatever the cursor has not reached when the file completes is read back
// then. Every byte of the file is hashed as it is in the file: a write
// over bytes already hashed (which a NORM sender does not cause) sends the check back to reading the whole
// file.
//
// WriteAt is called by one goroutine at a time (the session's disk
// writer), and sum only after the last write.
type hashingFile struct {
	f     *os.File
	h     hash.Hash
	at    int64  // the file's first at bytes are hashed
	ahead []span // written beyond at, not hashed yet: sorted, disjoint, not adjacent
	stale bool   // a write went over hashed bytes: hash the whole file at the end
	buf   []byte // for reading back
}

type span struct{ off, end int64 }

// maxAhead bounds the spans a hashingFile remembers; writes beyond them are
// hashed at the end, read back from the file.
const maxAhead = 256

func newHashingFile(f *os.File) *hashingFile { return &hashingFile{f: f, h: sha256.New()} }

func (hf *hashingFile) WriteAt(b []byte, off int64) (int, error) {
	n, err := hf.f.WriteAt(b, off)
	if err != nil || hf.stale || n == 0 {
		return n, err
	}
	end := off + int64(n)
	switch {
	case off < hf.at:
		hf.stale = true
	case off == hf.at:
		hf.h.Write(b[:n])
		hf.at = end
		hf.catchUp()
	default:
		hf.note(off, end)
	}
	return n, err
}

// note remembers that [off, end), past the cursor, is written.
func (hf *hashingFile) note(off, end int64) {
	a := hf.ahead
	// Out-of-order blocks come in rising order: look from the end.
	i := len(a)
	for i > 0 && a[i-1].off > off {
		i--
	}
	if i > 0 && a[i-1].end >= off {
		// Touches or overlaps the span before: grow it, and merge what it
		// now reaches.
		a[i-1].end = max(a[i-1].end, end)
		j := i
		for j < len(a) && a[j].off <= a[i-1].end {
			a[i-1].end = max(a[i-1].end, a[j].end)
			j++
		}
		hf.ahead = append(a[:i], a[j:]...)
		return
	}
	if i < len(a) && a[i].off <= end {
		a[i].off = off
		a[i].end = max(a[i].end, end)
		j := i + 1
		for j < len(a) && a[j].off <= a[i].end {
			a[i].end = max(a[i].end, a[j].end)
			j++
		}
		hf.ahead = append(a[:i+1], a[j:]...)
		return
	}
	if len(a) >= maxAhead {
		return // hashed from the file at the end
	}
	hf.ahead = append(a, span{})
	copy(hf.ahead[i+1:], hf.ahead[i:])
	hf.ahead[i] = span{off, end}
}

// catchUp hashes the spans written ahead that the cursor has now reached.
func (hf *hashingFile) catchUp() {
	for len(hf.ahead) > 0 && hf.ahead[0].off <= hf.at {
		s := hf.ahead[0]
		hf.ahead = hf.ahead[:copy(hf.ahead, hf.ahead[1:])]
		// A span the write that reached it went over holds that write's
		// bytes there, which are hashed: only the rest is read back.
		if err := hf.readBack(s.end); err != nil {
			hf.stale = true
			return
		}
	}
}

// readBack hashes the file from the cursor to end.
func (hf *hashingFile) readBack(end int64) error {
	if hf.buf == nil {
		hf.buf = make([]byte, 256<<10)
	}
	for hf.at < end {
		b := hf.buf[:min(int64(len(hf.buf)), end-hf.at)]
		n, err := hf.f.ReadAt(b, hf.at)
		hf.h.Write(b[:n])
		hf.at += int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// sum hashes what the cursor has not reached, up to the file's end, and
// returns the digest of the whole file and its length.
func (hf *hashingFile) sum() ([32]byte, int64, error) {
	var sum [32]byte
	if hf.stale {
		hf.h.Reset()
		hf.at = 0
	}
	hf.ahead = nil
	if _, err := hf.f.Seek(hf.at, io.SeekStart); err != nil {
		return sum, 0, err
	}
	if hf.buf == nil {
		hf.buf = make([]byte, 256<<10)
	}
	n, err := io.CopyBuffer(hf.h, onlyReader{hf.f}, hf.buf)
	if err != nil {
		return sum, 0, err
	}
	hf.at += n
	hf.h.Sum(sum[:0])
	return sum, hf.at, nil
}

// onlyReader hides a file's WriteTo, so that io.CopyBuffer uses the buffer
// given.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
