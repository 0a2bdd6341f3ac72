package session_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// open opens a session on host h.
func open(t *testing.T, h *lab.Host, cfg session.Config) *session.Session {
	t.Helper()
	if cfg.Interface == "" {
		cfg.Interface = lab.Iface
	}
	var s *session.Session
	if err := h.Do(func() (err error) { s, err = session.New(cfg); return err }); err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) * 2654435761
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// received collects the objects a receiver session gets, by info.
func received(t *testing.T, s *session.Session, want int, timeout time.Duration) map[string]*session.Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := map[string]*session.Object{}
	var objs []*session.Object
	for len(objs) < want {
		o, err := s.Accept(ctx)
		if err != nil {
			t.Fatalf("accept: %v after %d of %d objects", err, len(objs), want)
		}
		objs = append(objs, o)
	}
	for _, o := range objs {
		if o.Info().Kind == session.KindStream {
			got["stream"] = o
			continue
		}
		if err := o.Wait(ctx); err != nil {
			t.Fatalf("object %d (%v): %v", o.Info().ID, o.Info().Kind, err)
		}
		got[string(o.Info().Info)] = o
	}
	return got
}

// TestLabTransfers sends a data object, a file and a stream from one host
// to three, through 0, 1 and 10 % random loss on every receiver's link, and
// checks every byte.
func TestLabTransfers(t *testing.T) {
	l := lab.New(t, 4)
	data := pattern(2<<20, 1)
	fileData := pattern(3<<20+777, 2)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, fileData, 0o644); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	var stream []byte
	for i := range 200 {
		m := pattern(100+i*37%4000, byte(i))
		msgs = append(msgs, m)
		stream = append(stream, m...)
	}
	for i, loss := range []int{0, 1, 10} {
		t.Run(fmt.Sprintf("loss=%d%%", loss), func(t *testing.T) {
			for _, h := range l.Hosts[1:] {
				if err := h.SetLoss(loss); err != nil {
					t.Fatal(err)
				}
			}
			group := netip.MustParseAddrPort(fmt.Sprintf("239.255.1.1:%d", 6100+i))
			var rx []*session.Session
			var dirs []string
			for _, h := range l.Hosts[1:] {
				dir := t.TempDir()
				dirs = append(dirs, dir)
				rx = append(rx, open(t, h, session.Config{Group: group, Dir: dir, Seed: uint64(10 + len(rx))}))
			}
			tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 1,
				Sender: sender.Config{Rate: 30e6, Parity: 16, AutoParity: 1}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := tx.SendBytes(ctx, data, []byte("data")); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.SendPath(ctx, src, "sub/dir/file.bin"); err != nil {
				t.Fatal(err)
			}
			st, err := tx.OpenStream(ctx, session.StreamOptions{Info: []byte("stream"), Buffer: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				if _, err := st.Write(m); err != nil {
					t.Fatal(err)
				}
				if err := st.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			for r, s := range rx {
				got := received(t, s, 3, time.Minute)
				if o := got["data"]; o == nil || !bytes.Equal(o.Bytes(), data) {
					t.Fatalf("receiver %d: data object missing or different", r)
				}
				if o := got["sub/dir/file.bin"]; o == nil {
					t.Fatalf("receiver %d: file missing (got %v)", r, got)
				} else if want := filepath.Join(dirs[r], "sub", "dir", "file.bin"); o.Path() != want {
					t.Fatalf("receiver %d: file at %q, want %q", r, o.Path(), want)
				} else if b, err := os.ReadFile(o.Path()); err != nil || !bytes.Equal(b, fileData) {
					t.Fatalf("receiver %d: file content differs (%v)", r, err)
				}
				o := got["stream"]
				if o == nil {
					t.Fatalf("receiver %d: no stream", r)
				}
				b, err := io.ReadAll(o)
				if err != nil || !bytes.Equal(b, stream) {
					t.Fatalf("receiver %d: stream: %v, %d of %d bytes equal=%v", r, err, len(b), len(stream), bytes.Equal(b, stream))
				}
			}
			closeCtx, cc := context.WithTimeout(context.Background(), 30*time.Second)
			defer cc()
			start := time.Now()
			if err := tx.Close(closeCtx); err != nil {
				t.Fatalf("graceful close: %v", err)
			}
			t.Logf("loss %d%%: sender %+v; close took %v", loss, tx.Stats().Sender, time.Since(start))
		})
	}
}
