package main

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/session"
)

// extSHA256 is the header extension type filecast uses to carry a file's
// SHA-256 in its NORM_INFO: a Shoal-private type from the variable-length
// range. NORM receivers that do not know it skip it, so reference receivers
// see only the file name.
const extSHA256 = 100

// appendDigest appends the SHA-256 extension: het, hel (9 words), two
// reserved bytes, the 32-byte digest.
func appendDigest(e framing.Extensions, sum [32]byte) framing.Extensions {
	raw := make([]byte, 36)
	raw[0], raw[1] = extSHA256, 9
	copy(raw[4:], sum[:])
	e, _ = framing.AppendExtension(e, raw) // well-formed by construction
	return e
}

// digestOf returns the SHA-256 an object's NORM_INFO carries, if any.
func digestOf(ext framing.Extensions) ([32]byte, bool) {
	var sum [32]byte
	x, ok := ext.Find(extSHA256)
	if !ok || len(x.Raw) != 36 {
		return sum, false
	}
	copy(sum[:], x.Raw[4:])
	return sum, true
}

// store receives files into a directory: each object is written to a
// temporary file there and renamed into place only when it is complete, its
// digest checked and its name found safe.
type store struct {
	dir string
	mu  sync.Mutex
	tmp map[objKey]*hashingFile
	// finishing counts the finish calls under way, for cleanup to await.
	finishing sync.WaitGroup
}

type objKey struct {
	sender uint32
	id     uint16
}

func newStore(dir string) (*store, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return &store{dir: dir, tmp: map[objKey]*hashingFile{}}, nil
}

// sink is the session's FileSink: a temporary file per object.
func (s *store) sink(info session.ObjectInfo) (io.WriterAt, error) {
	f, err := os.CreateTemp(s.dir, fmt.Sprintf(".filecast-%08x-%d-*.part", uint32(info.Sender), info.ID))
	if err != nil {
		return nil, err
	}
	hf := newHashingFile(f)
	s.mu.Lock()
	s.tmp[objKey{uint32(info.Sender), uint16(info.ID)}] = hf
	s.mu.Unlock()
	return hf, nil
}

// cleanup removes the temporary file of every object not finished: those
// still arriving when the receiver stops, and those the receiver never
// took up. It first waits for the finish calls under way, which remove or
// rename their own files. Call it once the session is closed, so that no
// new object starts.
func (s *store) cleanup() {
	s.finishing.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, hf := range s.tmp {
		f := hf.f
		f.Close()
		os.Remove(f.Name())
		delete(s.tmp, k)
	}
}

// result is the outcome of one received file.
type result struct {
	Sender   string `json:"sender"`
	Name     string `json:"name"`
	Path     string `json:"path,omitempty"`
	Bytes    uint64 `json:"bytes"`
	SHA256   string `json:"sha256,omitempty"`
	Verified bool   `json:"verified"` // the sender's digest matched
	OK       bool   `json:"ok"`
	Err      string `json:"error,omitempty"`
}

var errDigest = errors.New("SHA-256 differs from the sender's")

// finish settles a received object: on error the temporary file goes; on
// success its digest is checked and it is moved to its name if the name is
// safe, else dropped.
func (s *store) finish(info session.ObjectInfo, werr error) result {
	k := objKey{uint32(info.Sender), uint16(info.ID)}
	s.mu.Lock()
	hf := s.tmp[k]
	delete(s.tmp, k)
	s.mu.Unlock()
	var f *os.File
	if hf != nil {
		f = hf.f
	}
	r := result{Sender: nodeName(uint32(info.Sender)), Name: string(info.Info), Bytes: info.Size}
	fail := func(err error) result {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		r.Err = err.Error()
		return r
	}
	if werr != nil {
		return fail(werr)
	}
	if f == nil {
		return fail(errors.New("no data was written"))
	}
	// Most of the file was hashed as it was written (see hashingFile).
	sum, n, err := hf.sum()
	if err != nil {
		return fail(err)
	}
	r.SHA256, r.Bytes = hex.EncodeToString(sum[:]), uint64(n)
	if want, ok := digestOf(info.InfoExt); ok {
		if want != sum {
			return fail(errDigest)
		}
		r.Verified = true
	}
	dst, err := session.SafePath(s.dir, r.Name)
	if err != nil {
		return fail(err)
	}
	tmp := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		r.Err = err.Error()
		return r
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		os.Remove(tmp)
		r.Err = err.Error()
		return r
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		r.Err = err.Error()
		return r
	}
	r.Path, r.OK = dst, true
	return r
}

// nodeName prints a NORM node id as the IPv4 address it usually is.
func nodeName(id uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], id)
	return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
}
