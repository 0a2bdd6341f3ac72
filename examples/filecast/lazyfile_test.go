package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenFilesBounded: 100 files read through a set that keeps at most
// 4 open, in order and then again from the start (a repair of an old
// file): every read returns the file's bytes, and no more than 4 are
// ever open.
func TestOpenFilesBounded(t *testing.T) {
	dir := t.TempDir()
	of := newOpenFiles(4)
	var files []*lazyFile
	var want [][]byte
	for i := range 100 {
		b := []byte(fmt.Sprintf("file %d: %s", i, bytes.Repeat([]byte{byte(i)}, i)))
		p := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files, want = append(files, of.file(p, int64(len(b)))), append(want, b)
	}
	for round := range 2 {
		for i, f := range files {
			got := make([]byte, len(want[i]))
			if n, err := f.ReadAt(got, 0); n != len(got) || err != nil || !bytes.Equal(got, want[i]) {
				t.Fatalf("round %d, file %d: %d bytes, %v, equal %v", round, i, n, err, bytes.Equal(got, want[i]))
			}
			if of.open > 4 || of.lru.Len() != of.open {
				t.Fatalf("%d files open (%d listed), want at most 4", of.open, of.lru.Len())
			}
		}
	}
	of.closeAll()
	if of.open != 0 {
		t.Fatalf("%d files open after closeAll", of.open)
	}
	if _, err := of.file(filepath.Join(dir, "missing"), 1).ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("reading a missing file succeeded")
	}
}
