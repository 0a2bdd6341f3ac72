package main

import (
	"container/list"
	"fmt"
	"os"
	"sync"
)

// openFiles keeps at most max files open for the sender at once, least
// recently read closed first. A tree of 100,000 files would otherwise
// hold 100,000 descriptors until the end (past the usual limit), though
// the session reads a file only while it sends or repairs it: a block at a
// time, so one open per block at worst.
type openFiles struct {
	mu   sync.Mutex
	max  int
	lru  *list.List // of *lazyFile, most recently read first
	open int
}

func newOpenFiles(max int) *openFiles { return &openFiles{max: max, lru: list.New()} }

// lazyFile is an io.ReaderAt for a file that is opened on its first read
// and may be closed between reads.
type lazyFile struct {
	of   *openFiles
	path string
	size int64
	f    *os.File
	elem *list.Element
}

func (of *openFiles) file(path string, size int64) *lazyFile {
	return &lazyFile{of: of, path: path, size: size}
}

// ReadAt reads the file at off. A file that shrank since it was hashed
// reads short, and the session reports the object failed.
func (l *lazyFile) ReadAt(p []byte, off int64) (int, error) {
	of := l.of
	of.mu.Lock()
	defer of.mu.Unlock()
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			return 0, err
		}
		l.f = f
		l.elem = of.lru.PushFront(l)
		of.open++
		for of.open > of.max {
			old := of.lru.Back().Value.(*lazyFile)
			old.closeLocked()
		}
	} else {
		of.lru.MoveToFront(l.elem)
	}
	n, err := l.f.ReadAt(p, off)
	if err == nil && off+int64(n) > l.size {
		err = fmt.Errorf("%s grew while being sent", l.path)
	}
	return n, err
}

func (l *lazyFile) closeLocked() {
	if l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
	l.of.lru.Remove(l.elem)
	l.elem = nil
	l.of.open--
}

// closeAll closes every file still open.
func (of *openFiles) closeAll() {
	of.mu.Lock()
	defer of.mu.Unlock()
	for of.lru.Len() > 0 {
		of.lru.Front().Value.(*lazyFile).closeLocked()
	}
}
