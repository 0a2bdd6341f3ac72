package session_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// open opens a session on host h; with a loss given, its socket is wrapped
// in a LossConn.
func open(t *testing.T, h *lab.Host, cfg session.Config, loss ...session.Loss) *session.Session {
	t.Helper()
	if cfg.Interface == "" {
		cfg.Interface = lab.Iface
	}
	var s *session.Session
	if err := h.Do(func() (err error) {
		if len(loss) == 2 {
			pc, err := session.Listen(cfg)
			if err != nil {
				return err
			}
			cfg.Conn = session.NewLossConn(pc, loss[0], loss[1], cfg.Seed)
		}
		s, err = session.New(cfg)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
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
			if err := tx.Shutdown(closeCtx); err != nil {
				t.Fatalf("graceful close: %v", err)
			}
			t.Logf("loss %d%%: sender %+v; close took %v", loss, tx.Stats().Sender, time.Since(start))
		})
	}
}

// sendAndExpect sends one data object from tx and checks which of the
// receivers get it within d.
func gotObject(s *session.Session, d time.Duration) *session.Object {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	o, err := s.Accept(ctx)
	if err != nil {
		return nil
	}
	if o.Wait(ctx) != nil {
		return nil
	}
	return o
}

func TestLabIPv6(t *testing.T) {
	l := lab.New(t, 3)
	group := netip.MustParseAddrPort("[ff15::6003]:6200")
	rx1 := open(t, l.Hosts[1], session.Config{Group: group, Seed: 3})
	rx2 := open(t, l.Hosts[2], session.Config{Group: group, Seed: 4})
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 5, NodeID: 0x99})
	data := pattern(500_000, 9)
	if _, err := tx.SendBytes(context.Background(), data, []byte("v6")); err != nil {
		t.Fatal(err)
	}
	for i, rx := range []*session.Session{rx1, rx2} {
		o := gotObject(rx, 20*time.Second)
		if o == nil || !bytes.Equal(o.Bytes(), data) || o.Info().Sender != 0x99 {
			t.Fatalf("IPv6 receiver %d: object %+v", i, o)
		}
	}
}

// TestLabSSM: receivers joined to (host0, G) get host0's object and never
// the one host2 sends to the same group.
func TestLabSSM(t *testing.T) {
	l := lab.New(t, 4)
	group := netip.MustParseAddrPort("232.1.1.1:6300")
	var rx []*session.Session
	for _, h := range []*lab.Host{l.Hosts[1], l.Hosts[3]} {
		rx = append(rx, open(t, h, session.Config{Group: group, Source: l.Hosts[0].IP4, Seed: uint64(20 + len(rx))}))
	}
	good := open(t, l.Hosts[0], session.Config{Group: group, Seed: 1})
	bad := open(t, l.Hosts[2], session.Config{Group: group, Seed: 2})
	if _, err := bad.SendBytes(context.Background(), pattern(100_000, 1), []byte("intruder")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := good.SendBytes(context.Background(), pattern(100_000, 2), []byte("source")); err != nil {
		t.Fatal(err)
	}
	for i, s := range rx {
		o := gotObject(s, 20*time.Second)
		if o == nil || string(o.Info().Info) != "source" || o.Info().Sender != good.NodeID() {
			t.Fatalf("receiver %d: got %+v, want the source's object", i, o)
		}
		if o := gotObject(s, 2*time.Second); o != nil {
			t.Fatalf("receiver %d also got %q from the other source", i, o.Info().Info)
		}
	}
}

// TestLabTwoGroupsOnePort: two groups on one port stay apart, even with
// both sessions on one host.
func TestLabTwoGroupsOnePort(t *testing.T) {
	l := lab.New(t, 2)
	g1 := netip.MustParseAddrPort("239.255.2.1:6400")
	g2 := netip.MustParseAddrPort("239.255.2.2:6400")
	r1 := open(t, l.Hosts[1], session.Config{Group: g1, Seed: 1})
	r2 := open(t, l.Hosts[1], session.Config{Group: g2, Seed: 2})
	t1 := open(t, l.Hosts[0], session.Config{Group: g1, Seed: 3})
	t2 := open(t, l.Hosts[0], session.Config{Group: g2, Seed: 4})
	ctx := context.Background()
	if _, err := t1.SendBytes(ctx, []byte("for group one"), []byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := t2.SendBytes(ctx, []byte("for group two"), []byte("two")); err != nil {
		t.Fatal(err)
	}
	for want, s := range map[string]*session.Session{"one": r1, "two": r2} {
		o := gotObject(s, 20*time.Second)
		if o == nil || string(o.Info().Info) != want {
			t.Fatalf("group %s: got %+v", want, o)
		}
		if o := gotObject(s, time.Second); o != nil {
			t.Fatalf("group %s also got %q (%+v) stats %+v", want, o.Info().Info, o.Info(), s.Stats().Receiver)
		}
	}
}

// TestLabLateReceiver: a receiver that starts in the middle of an object
// gets all of it (the sender still holds it and repairs what it missed).
func TestLabLateReceiver(t *testing.T) {
	l := lab.New(t, 2)
	group := netip.MustParseAddrPort("239.255.3.1:6500")
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 1, Sender: sender.Config{Rate: 5e6}})
	data := pattern(4<<20, 3) // 0.8 s at 5 MB/s
	if _, err := tx.SendBytes(context.Background(), data, []byte("late")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 2})
	o := gotObject(rx, 30*time.Second)
	if o == nil || !bytes.Equal(o.Bytes(), data) {
		t.Fatalf("late receiver: %+v", o)
	}
	if rx.Stats().NacksSent == 0 {
		t.Fatal("the late receiver got everything without asking: it was not late")
	}
}

// TestLabCloseNoLeak: Close returns after the flush, and the session's
// goroutine is gone.
func TestLabCloseNoLeak(t *testing.T) {
	l := lab.New(t, 2)
	before := runtime.NumGoroutine()
	group := netip.MustParseAddrPort("239.255.4.1:6600")
	var rx, tx *session.Session
	if err := l.Hosts[1].Do(func() (err error) {
		rx, err = session.New(session.Config{Group: group, Interface: lab.Iface, Seed: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := l.Hosts[0].Do(func() (err error) {
		tx, err = session.New(session.Config{Group: group, Interface: lab.Iface, Seed: 2})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.SendBytes(context.Background(), pattern(300_000, 1), nil); err != nil {
		t.Fatal(err)
	}
	if o := gotObject(rx, 20*time.Second); o == nil {
		t.Fatal("object not received")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := tx.Shutdown(ctx); err != nil {
		t.Fatalf("sender close: %v", err)
	}
	var gone bool
	for ev := range rx.Events() {
		if _, ok := ev.(session.SenderGone); ok {
			gone = true
			break
		}
	}
	if err := rx.Shutdown(ctx); err != nil {
		t.Fatalf("receiver close: %v", err)
	}
	if !gone {
		t.Fatal("receiver never saw the sender leave (EOT)")
	}
	if _, err := tx.SendBytes(context.Background(), []byte("x"), nil); err == nil {
		t.Fatal("send after Close succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
}

// TestLabSameHostReceivers: two receivers on one host, same group and port,
// both get every object.
func TestLabSameHostReceivers(t *testing.T) {
	l := lab.New(t, 2)
	group := netip.MustParseAddrPort("239.255.5.1:6700")
	r1 := open(t, l.Hosts[1], session.Config{Group: group, Seed: 1, NodeID: 0x101})
	r2 := open(t, l.Hosts[1], session.Config{Group: group, Seed: 2, NodeID: 0x102})
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 3})
	data := pattern(200_000, 5)
	if _, err := tx.SendBytes(context.Background(), data, []byte("both")); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*session.Session{r1, r2} {
		if o := gotObject(s, 20*time.Second); o == nil || !bytes.Equal(o.Bytes(), data) {
			t.Fatalf("receiver %d on the shared port: %+v", i, o)
		}
	}
}

// TestLabBatchPathAndInjectedLoss: without GSO the session sends in
// sendmmsg batches; seeded loss injection on both sides still ends in a
// complete object, and the injected losses are counted.
func TestLabBatchPathAndInjectedLoss(t *testing.T) {
	l := lab.New(t, 2)
	group := netip.MustParseAddrPort("239.255.7.1:6900")
	rx := open(t, l.Hosts[1], session.Config{Group: group, Seed: 1}, session.Loss{}, session.Loss{Rate: 0.03})
	tx := open(t, l.Hosts[0], session.Config{Group: group, Seed: 2, DisableGSO: true, Sender: sender.Config{Parity: 8}},
		session.Loss{Rate: 0.05, BurstLen: 3}, session.Loss{})
	data := pattern(3<<20, 7)
	if _, err := tx.SendBytes(context.Background(), data, []byte("lossy")); err != nil {
		t.Fatal(err)
	}
	if o := gotObject(rx, 30*time.Second); o == nil || !bytes.Equal(o.Bytes(), data) {
		t.Fatalf("object through injected loss: %+v", o)
	}
	ts, rs := tx.Stats(), rx.Stats()
	if ts.GSO || ts.InjectedTxLoss == 0 || rs.InjectedRxLoss == 0 || ts.RepairsSent == 0 {
		t.Fatalf("GSO %v, injected tx %d rx %d, repairs %d", ts.GSO, ts.InjectedTxLoss, rs.InjectedRxLoss, ts.RepairsSent)
	}
}
