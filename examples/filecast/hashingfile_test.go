package main

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestHashingFile: whatever the order, overlap and repetition of the
// writes, the digest is the SHA-256 of the file as it ends up, and the
// data is hashed from the writes in the common case (no read-back of what
// came in order).
func TestHashingFile(t *testing.T) {
	const size = 300_000
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	type write struct{ off, n int }
	chunks := func(n int) []write {
		var w []write
		for off := 0; off < size; off += n {
			w = append(w, write{off, min(n, size-off)})
		}
		return w
	}
	inOrder := chunks(1400 * 64)
	swapped := chunks(1400)
	for i := 0; i+1 < len(swapped); i += 7 {
		swapped[i], swapped[i+1] = swapped[i+1], swapped[i]
	}
	shuffled := chunks(1000)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	reversed := chunks(500) // more spans ahead than are remembered
	for i, j := 0, len(reversed)-1; i < j; i, j = i+1, j-1 {
		reversed[i], reversed[j] = reversed[j], reversed[i]
	}
	overlapping := append(chunks(3000), write{100, 5000}, write{size - 10, 10})
	aheadOverlap := []write{{5000, 3000}, {0, 6000}, {6000, size - 6000}}
	short := chunks(4096)[:20] // the file ends before the size: a hole
	short = append(short, write{size - 100, 100})
	for name, ws := range map[string][]write{"in order": inOrder, "swapped pairs": swapped, "shuffled": shuffled,
		"reversed": reversed, "overlapping": overlapping, "ahead overlap": aheadOverlap, "with a hole": short} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "f"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hf := newHashingFile(f)
			for _, w := range ws {
				if _, err := hf.WriteAt(data[w.off:w.off+w.n], int64(w.off)); err != nil {
					t.Fatal(err)
				}
			}
			if name == "in order" && hf.at != size {
				t.Errorf("in-order writes hashed up to %d of %d", hf.at, size)
			}
			sum, n, err := hf.sum()
			if err != nil {
				t.Fatal(err)
			}
			onDisk, _ := os.ReadFile(f.Name())
			if want := sha256.Sum256(onDisk); sum != want || n != int64(len(onDisk)) {
				t.Fatalf("digest %x over %d bytes; the file's is %x over %d", sum, n, want, len(onDisk))
			}
			if name != "with a hole" && !bytes.Equal(onDisk, data) {
				t.Fatal("file content differs")
			}
		})
	}
}

// TestHashingFileOverwrite: bytes changed after they were hashed (a write
// over them) count as they are in the file, not as first hashed.
func TestHashingFileOverwrite(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hf := newHashingFile(f)
	good := bytes.Repeat([]byte("good"), 1000)
	hf.WriteAt(good, 0)
	hf.WriteAt([]byte("BAD!"), 400)
	sum, _, err := hf.sum()
	if err != nil {
		t.Fatal(err)
	}
	if sum == sha256.Sum256(good) {
		t.Fatal("the digest is of the first write, not of the file")
	}
	onDisk, _ := os.ReadFile(f.Name())
	if sum != sha256.Sum256(onDisk) {
		t.Fatal("the digest is not the file's")
	}
}
