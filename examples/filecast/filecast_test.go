package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoalnet/shoal/internal/bitrate"
	"github.com/shoalnet/shoal/session"
)

func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"demo", "--fast", "--size", "3MiB", "--loss", "10%", "--receivers", "3"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	if n := strings.Count(out.String(), "bytes sha256="); n != 3 || !strings.Contains(out.String(), "3/3 receivers verified") {
		t.Fatalf("output:\n%s", out.String())
	}
}

// writeObject plays the session's part: a file object arrives through the
// sink, then completes.
func writeObject(t *testing.T, st *store, id uint16, name string, data []byte, digest []byte) result {
	t.Helper()
	info := session.ObjectInfo{Sender: 0x0a000001, ID: session.ObjectID(id), Kind: session.KindFile, Size: uint64(len(data)), Info: []byte(name)}
	w, err := st.sink(info)
	if err != nil {
		return st.finish(info, err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	var sum [32]byte
	copy(sum[:], digest)
	info.InfoExt = appendDigest(nil, sum)
	return st.finish(info, nil)
}

func digest(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".part") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestStoreHostileNames(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "in")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	st, err := newStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("payload")
	for i, name := range []string{"../escape", "/etc/shoal-test", "a/../../escape", "", "ok/../../x", "link/escape",
		strings.Repeat("x", 300), "a//b", "a\\b"} {
		r := writeObject(t, st, uint16(i), name, data, digest(data))
		if r.OK || r.Err == "" {
			t.Errorf("hostile name %q accepted: %+v", name, r)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("files written outside the directory: %v", entries)
	}
	if _, err := os.Stat("/etc/shoal-test"); err == nil {
		t.Fatal("absolute name written")
	}
	r := writeObject(t, st, 99, "good/dir/file.bin", data, digest(data))
	if !r.OK || !r.Verified || r.Path != filepath.Join(dir, "good", "dir", "file.bin") {
		t.Fatalf("good name: %+v", r)
	}
	if b, _ := os.ReadFile(r.Path); !bytes.Equal(b, data) {
		t.Fatal("good file content differs")
	}
	noTempFiles(t, dir)
}

func TestStoreDigestMismatch(t *testing.T) {
	dir := t.TempDir()
	st, _ := newStore(dir)
	r := writeObject(t, st, 1, "f.bin", []byte("what arrived"), digest([]byte("what was sent")))
	if r.OK || !strings.Contains(r.Err, errDigest.Error()) {
		t.Fatalf("mismatch not caught: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a file whose digest differs was put in place")
	}
	noTempFiles(t, dir)
}

// TestStoreUnwritable: a directory that cannot take the file gives a clear
// failure for that file, and the next one still works.
func TestStoreUnwritable(t *testing.T) {
	dir := t.TempDir()
	st, _ := newStore(dir)
	st.dir = filepath.Join(dir, "gone") // vanished after start: writes fail
	r := writeObject(t, st, 1, "a.bin", []byte("x"), digest([]byte("x")))
	if r.OK || r.Err == "" {
		t.Fatalf("unwritable dir: %+v", r)
	}
	var out bytes.Buffer
	report(r, false, &out)
	if !strings.HasPrefix(out.String(), `filecast: FAILED "a.bin"`) {
		t.Fatalf("failure line %q", out.String())
	}
	st.dir = dir
	if r := writeObject(t, st, 2, "b.bin", []byte("y"), digest([]byte("y"))); !r.OK {
		t.Fatalf("next file after a failure: %+v", r)
	}
}

func TestCollectTree(t *testing.T) {
	root := t.TempDir()
	tree := filepath.Join(root, "tree")
	for _, p := range []string{"a.txt", "sub/b.txt", "sub/deeper/c.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	single := filepath.Join(root, "single.bin")
	if err := os.WriteFile(single, []byte("s"), 0o644); err != nil {
		t.Fatal(err)
	}
	items, err := collect([]string{tree, single})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range items {
		names = append(names, it.name)
	}
	want := "tree/a.txt tree/sub/b.txt tree/sub/deeper/c.txt single.bin"
	if strings.Join(names, " ") != want {
		t.Fatalf("names %v, want %s", names, want)
	}
}

func TestFlagsParse(t *testing.T) {
	if v, err := bitrate.Parse("1.5G"); err != nil || v != 1.5e9 {
		t.Fatal(v, err)
	}
	if _, err := bitrate.Parse("fast"); err == nil {
		t.Fatal("bad rate accepted")
	}
	if v, err := parsePct("5%"); err != nil || v != 0.05 {
		t.Fatal(v, err)
	}
	if ids, err := parseNodes("10.0.0.2,0x0b000001,7"); err != nil || len(ids) != 3 || ids[0] != 0x0a000002 || ids[1] != 0x0b000001 {
		t.Fatal(ids, err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"send", "--max-rate", "10M", "x"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--max-rate needs --cc") {
		t.Fatalf("--max-rate without --cc: exit %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"send", "--cc", "--max-rate", "fast", "x"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--max-rate: bad rate") {
		t.Fatalf("--cc --max-rate fast: exit %d %q", code, errOut.String())
	}
}
