package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

var (
	peerOnce sync.Once
	peerPath string
	peerErr  error
)

// peer builds normpeer against libnorm once per test binary.
func peer(t *testing.T) string {
	t.Helper()
	if why := lab.Available(); why != "" {
		t.Skipf("interop: %s", why)
	}
	if _, err := os.Stat("/usr/include/normApi.h"); err != nil {
		t.Skip("interop: libnorm-dev is not installed (apt-get install libnorm-dev)")
	}
	if _, err := exec.LookPath("g++"); err != nil {
		t.Skip("interop: g++ is not installed")
	}
	peerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "normpeer-")
		if err != nil {
			peerErr = err
			return
		}
		peerPath = filepath.Join(dir, "normpeer")
		out, err := exec.Command("g++", "-O1", "-o", peerPath, "normpeer/normpeer.cpp", "-lnorm").CombinedOutput()
		if err != nil {
			peerErr = fmt.Errorf("building normpeer: %v\n%s", err, out)
		}
	})
	if peerErr != nil {
		t.Fatal(peerErr)
	}
	return peerPath
}

func nodeID(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// objects is the test's set: several objects of every kind in a row.
type object struct {
	kind string // data, file, stream, empty
	name string
	data []byte
}

func testObjects() []object {
	return []object{
		{"data", "d1.bin", content(300_000, 1)},
		{"file", "f1.bin", content(1_000_000+123, 2)},
		{"empty", "empty", nil},
		{"data", "d2.bin", content(70_000, 3)},
		{"stream", "s1.bin", content(500_000, 4)},
	}
}

// peerRecv starts normpeer receivers on hosts and returns a function that
// waits for them and returns each one's output lines and directory.
func peerRecv(t *testing.T, bin string, hosts []*lab.Host, group netip.AddrPort, count int, extra ...string) func() ([][]string, []string) {
	t.Helper()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	var dirs []string
	for _, h := range hosts {
		dir := t.TempDir()
		args := append([]string{"netns", "exec", h.NS, bin, "recv", "--addr", group.Addr().String(), "--port", fmt.Sprint(group.Port()),
			"--iface", lab.Iface, "--id", fmt.Sprint(nodeID(h.IP4)), "--dir", dir, "--count", fmt.Sprint(count), "--timeout", "90"}, extra...)
		cmd := exec.Command("ip", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs, dirs = append(cmds, cmd), append(outs, &out), append(dirs, dir)
	}
	return func() ([][]string, []string) {
		var lines [][]string
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Errorf("normpeer receiver %d: %v\n%s", i, err, outs[i].String())
			}
			var l []string
			sc := bufio.NewScanner(strings.NewReader(outs[i].String()))
			for sc.Scan() {
				l = append(l, sc.Text())
			}
			lines = append(lines, l)
		}
		return lines, dirs
	}
}

// shoalSend sends objs from a Shoal session on h.
func shoalSend(t *testing.T, h *lab.Host, group netip.AddrPort, objs []object, scfg sender.Config) *session.Session {
	t.Helper()
	var s *session.Session
	if err := h.Do(func() (err error) {
		s, err = session.New(session.Config{Group: group, Interface: lab.Iface, Sender: scfg})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o.kind {
		case "data", "empty":
			_, err = s.SendBytes(ctx, o.data, []byte(o.name))
		case "file":
			_, err = s.SendFile(ctx, bytes.NewReader(o.data), int64(len(o.data)), []byte(o.name))
		case "stream":
			var st *session.Stream
			st, err = s.OpenStream(ctx, session.StreamOptions{Info: []byte(o.name)})
			if err == nil {
				for off := 0; off < len(o.data) && err == nil; off += 8192 {
					_, err = st.Write(o.data[off:min(off+8192, len(o.data))])
					if err == nil {
						err = st.Flush()
					}
				}
				if err == nil {
					err = st.Close()
				}
			}
		}
		if err != nil {
			t.Fatalf("send %s: %v", o.name, err)
		}
	}
	return s
}

// checkPeerGot compares a normpeer receiver's directory with objs.
func checkPeerGot(t *testing.T, r int, lines []string, dir string, objs []object) {
	t.Helper()
	n := 0
	for _, l := range lines {
		if f := strings.Fields(l); len(f) >= 4 && f[0] == "OBJ" {
			n++
			if f[3] != "completed" {
				t.Errorf("receiver %d: %s", r, l)
			}
		}
	}
	if n != len(objs) {
		t.Errorf("receiver %d: %d objects reported, want %d:\n%s", r, n, len(objs), strings.Join(lines, "\n"))
	}
	for _, o := range objs {
		got, err := os.ReadFile(filepath.Join(dir, o.name))
		if err != nil || !bytes.Equal(got, o.data) {
			t.Errorf("receiver %d: %s %s: %v, %d of %d bytes, equal %v", r, o.kind, o.name, err, len(got), len(o.data), bytes.Equal(got, o.data))
		}
	}
}

// TestShoalToLibnorm: a Shoal sender, two libnorm receivers; every object
// kind, several in a row, an empty one; with and without loss and FEC.
func TestShoalToLibnorm(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	objs := testObjects()
	for i, c := range []struct {
		loss         int
		parity, auto int
	}{{0, 0, 0}, {10, 0, 0}, {0, 16, 4}, {10, 16, 4}} {
		t.Run(fmt.Sprintf("loss=%d%%/parity=%d/auto=%d", c.loss, c.parity, c.auto), func(t *testing.T) {
			for _, h := range l.Hosts[1:] {
				if err := h.SetLoss(c.loss); err != nil {
					t.Fatal(err)
				}
			}
			group := netip.MustParseAddrPort(fmt.Sprintf("239.255.20.1:%d", 7500+i))
			wait := peerRecv(t, bin, l.Hosts[1:], group, len(objs))
			time.Sleep(time.Second)
			s := shoalSend(t, l.Hosts[0], group, objs, sender.Config{Rate: 5e6, Parity: c.parity, AutoParity: c.auto, GRTT: 10 * time.Millisecond})
			lines, dirs := wait()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Close(ctx)
			for r := range lines {
				checkPeerGot(t, r, lines[r], dirs[r], objs)
			}
		})
	}
}

// writeObjects writes objs into dir for normpeer to send, and returns its
// arguments.
func writeObjects(t *testing.T, dir string, objs []object) []string {
	t.Helper()
	var args []string
	for _, o := range objs {
		if o.kind == "empty" {
			args = append(args, "--empty")
			continue
		}
		p := filepath.Join(dir, o.name)
		if err := os.WriteFile(p, o.data, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--"+o.kind, p)
	}
	return args
}

// shoalRecv opens a Shoal receiver session on h.
func shoalRecv(t *testing.T, h *lab.Host, group netip.AddrPort, cfg session.Config) *session.Session {
	t.Helper()
	cfg.Group, cfg.Interface = group, lab.Iface
	var s *session.Session
	if err := h.Do(func() (err error) { s, err = session.New(cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// collect accepts n objects on s and returns them by name (streams read
// whole).
func collect(t *testing.T, s *session.Session, n int, timeout time.Duration) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	got := map[string][]byte{}
	for range n {
		o, err := s.Accept(ctx)
		if err != nil {
			t.Fatalf("accept: %v (got %d of %d)", err, len(got), n)
		}
		var data []byte
		if o.Info().Kind == session.KindStream {
			data, err = io.ReadAll(o)
		} else if err = o.Wait(ctx); err == nil {
			data = o.Bytes()
		}
		if err != nil {
			t.Fatalf("object %d (%v): %v", o.Info().ID, o.Info().Kind, err)
		}
		name := string(o.Info().Info)
		if name == "" && len(data) == 0 {
			name = "empty"
		}
		got[name] = data
	}
	return got
}

// TestLibnormToShoal: a libnorm sender, two Shoal receivers; every object
// kind in a row, with and without loss and FEC (the sender's auto parity
// and on-demand parity decoded by Shoal).
func TestLibnormToShoal(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	objs := testObjects()
	src := t.TempDir()
	args := writeObjects(t, src, objs)
	for i, c := range []struct {
		loss         int
		parity, auto int
	}{{0, 0, 0}, {10, 0, 0}, {0, 16, 4}, {10, 16, 4}} {
		t.Run(fmt.Sprintf("loss=%d%%/parity=%d/auto=%d", c.loss, c.parity, c.auto), func(t *testing.T) {
			for _, h := range l.Hosts[1:] {
				if err := h.SetLoss(c.loss); err != nil {
					t.Fatal(err)
				}
			}
			group := netip.MustParseAddrPort(fmt.Sprintf("239.255.22.1:%d", 7700+i))
			var rx []*session.Session
			for _, h := range l.Hosts[1:] {
				rx = append(rx, shoalRecv(t, h, group, session.Config{Receiver: receiverSyncAll()}))
			}
			time.Sleep(500 * time.Millisecond)
			cmd := exec.Command("ip", append([]string{"netns", "exec", l.Hosts[0].NS, bin, "send", "--addr", group.Addr().String(),
				"--port", fmt.Sprint(group.Port()), "--iface", lab.Iface, "--id", fmt.Sprint(nodeID(l.Hosts[0].IP4)),
				"--rate", "40000000", "--parity", fmt.Sprint(c.parity), "--auto", fmt.Sprint(c.auto), "--timeout", "60"}, args...)...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for r, s := range rx {
				got := collect(t, s, len(objs), 60*time.Second)
				for _, o := range objs {
					if !bytes.Equal(got[o.name], o.data) {
						t.Errorf("shoal receiver %d: %s %s: %d of %d bytes, equal %v", r, o.kind, o.name, len(got[o.name]), len(o.data), bytes.Equal(got[o.name], o.data))
					}
				}
				if st := s.Stats(); c.parity > 0 && c.loss > 0 && st.FECRecovered == 0 {
					t.Errorf("shoal receiver %d decoded nothing from libnorm's parity", r)
				}
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("normpeer sender: %v\n%s", err, out.String())
			}
		})
	}
}

// receiverSyncAll: the libnorm sender starts at once, so receivers take
// its objects from the first one on.
func receiverSyncAll() receiver.Config { return receiver.Config{} }
