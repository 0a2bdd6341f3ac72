package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/session"
)

// makeTree writes a small directory tree and returns its files' contents.
func makeTree(t *testing.T, root string) map[string][]byte {
	files := map[string][]byte{}
	for i, p := range []string{"a.bin", "sub/b.bin", "sub/deep/c.bin", "empty.bin"} {
		size := []int{700_000, 1 << 20, 333_333, 0}[i]
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(j*7 + i)
		}
		full := filepath.Join(root, "tree", p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files["tree/"+p] = b
	}
	return files
}

// receivers runs filecast recv on hosts, each into a directory of its own.
type receivers struct {
	dirs []string
	outs []bytes.Buffer
	wg   sync.WaitGroup
}

// startRecv starts filecast recv on every host with the given group and
// further args; a receiver that exits non-zero fails the test.
func startRecv(t *testing.T, hosts []*lab.Host, group string, args ...string) *receivers {
	rs := &receivers{dirs: make([]string, len(hosts)), outs: make([]bytes.Buffer, len(hosts))}
	for r, h := range hosts {
		rs.dirs[r] = t.TempDir()
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			var errOut bytes.Buffer
			var code int
			_ = h.Do(func() error {
				code = run(append([]string{"recv", "--dir", rs.dirs[r], "--group", group, "--iface", lab.Iface}, args...),
					&rs.outs[r], &errOut)
				return nil
			})
			if code != 0 {
				t.Errorf("receiver %d: exit %d: %s", r, code, errOut.String())
			}
		}()
	}
	return rs
}

// check waits for the receivers and checks that each reported every file
// ok and holds it intact.
func (rs *receivers) check(t *testing.T, files map[string][]byte) {
	rs.wg.Wait()
	for r := range rs.outs {
		if n := strings.Count(rs.outs[r].String(), " ok\n"); n != len(files) {
			t.Errorf("receiver %d: %d ok lines:\n%s", r, n, rs.outs[r].String())
		}
		for name, want := range files {
			got, err := os.ReadFile(filepath.Join(rs.dirs[r], filepath.FromSlash(name)))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("receiver %d: %s: %v (equal %v)", r, name, err, bytes.Equal(got, want))
			}
		}
	}
}

// TestLabFilecast runs filecast send and three filecast recv in network
// namespaces through 0, 1 and 10 % loss and checks every file.
func TestLabFilecast(t *testing.T) {
	l := lab.New(t, 4)
	src := t.TempDir()
	files := makeTree(t, src)
	for i, loss := range []int{0, 1, 10} {
		t.Run(fmt.Sprintf("loss=%d%%", loss), func(t *testing.T) {
			for _, h := range l.Hosts[1:] {
				if err := h.SetLoss(loss); err != nil {
					t.Fatal(err)
				}
			}
			group := fmt.Sprintf("239.255.10.1:%d", 7100+i)
			rs := startRecv(t, l.Hosts[1:], group, "--count", fmt.Sprint(len(files)), "--idle-timeout", "60s")
			time.Sleep(500 * time.Millisecond) // receivers join
			var out, errOut bytes.Buffer
			var code int
			_ = l.Hosts[0].Do(func() error {
				code = run([]string{"send", "--group", group, "--iface", lab.Iface, "--rate", "200M",
					"--auto-parity", fmt.Sprint(loss * 2 / 3), "--ack", "auto", filepath.Join(src, "tree")}, &out, &errOut)
				return nil
			})
			rs.check(t, files)
			if code != 0 || !strings.HasPrefix(out.String(), "filecast: sent 4 files ") {
				t.Fatalf("send: exit %d\n%s\n%s", code, out.String(), errOut.String())
			}
		})
	}
}

// TestLabHostileName: a sender offering a name outside the directory gets
// a FAILED line at the receiver and nothing written.
func TestLabHostileName(t *testing.T) {
	l := lab.New(t, 2)
	group := "239.255.10.2:7200"
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	done := make(chan int)
	go func() {
		var code int
		_ = l.Hosts[1].Do(func() error {
			code = run([]string{"recv", "--dir", dir, "--group", group, "--iface", lab.Iface, "--count", "1", "--idle-timeout", "30s"}, &out, &errOut)
			return nil
		})
		done <- code
	}()
	time.Sleep(500 * time.Millisecond)
	var s *session.Session
	if err := l.Hosts[0].Do(func() (err error) {
		s, err = session.New(session.Config{Group: netip.MustParseAddrPort(group), Interface: lab.Iface})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	data := []byte("not for you")
	if _, err := s.SendFile(context.Background(), bytes.NewReader(data), int64(len(data)), []byte("../../etc/shoal-evil")); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code == 0 || !strings.Contains(out.String(), `FAILED "../../etc/shoal-evil"`) {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
	if _, err := os.Stat("/etc/shoal-evil"); err == nil {
		t.Fatal("hostile name written outside the directory")
	}
}

// TestLabSilentRepeat: silent receivers (no feedback at all, a one-way
// link) get a file through 5 % loss from proactive parity and repetition.
func TestLabSilentRepeat(t *testing.T) {
	l := lab.New(t, 3)
	src := t.TempDir()
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	path := filepath.Join(src, "oneway.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Hosts[1:] {
		if err := h.SetLoss(5); err != nil {
			t.Fatal(err)
		}
	}
	group := "239.255.10.3:7250"
	var wg sync.WaitGroup
	dirs := make([]string, 2)
	outs := make([]bytes.Buffer, 2)
	for r, h := range l.Hosts[1:] {
		dirs[r] = t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.Do(func() error {
				run([]string{"recv", "--silent", "--dir", dirs[r], "--group", group, "--iface", lab.Iface,
					"--count", "1", "--idle-timeout", "60s", "--linger", "0"}, &outs[r], io.Discard)
				return nil
			})
		}()
	}
	time.Sleep(500 * time.Millisecond)
	var out bytes.Buffer
	_ = l.Hosts[0].Do(func() error {
		run([]string{"send", "--group", group, "--iface", lab.Iface, "--rate", "100M", "--parity", "16",
			"--auto-parity", "16", "--repeat", "2", path}, &out, io.Discard)
		return nil
	})
	wg.Wait()
	for r := range dirs {
		got, err := os.ReadFile(filepath.Join(dirs[r], "oneway.bin"))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("silent receiver %d: %v\n%s", r, err, outs[r].String())
		}
	}
}

// TestLabAckFailure: a required acknowledgement that never comes (a node
// that does not exist) is reported and fails the exit status; the real
// receiver's acknowledgement is reported too.
func TestLabAckFailure(t *testing.T) {
	l := lab.New(t, 2)
	src := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(src, make([]byte, 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	group := "239.255.10.4:7260"
	dir := t.TempDir()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = l.Hosts[1].Do(func() error {
			// The sender names this receiver by its address: --node makes
			// that its id (the default is random).
			run([]string{"recv", "--dir", dir, "--group", group, "--iface", lab.Iface, "--count", "1", "--idle-timeout", "60s",
				"--node", l.Hosts[1].IP4.String()}, io.Discard, io.Discard)
			return nil
		})
	}()
	time.Sleep(500 * time.Millisecond)
	var out, errOut bytes.Buffer
	var code int
	_ = l.Hosts[0].Do(func() error {
		code = run([]string{"send", "--group", group, "--iface", lab.Iface, "--ack", l.Hosts[1].IP4.String() + ",10.99.0.99", src}, &out, &errOut)
		return nil
	})
	wg.Wait()
	if code == 0 || !strings.Contains(errOut.String(), "10.99.0.99 did not acknowledge") ||
		!strings.Contains(errOut.String(), l.Hosts[1].IP4.String()+" acknowledged everything") {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
}

// TestLabFilecastCC runs filecast send --cc (NORM congestion control,
// starting at its default 1 Mbit/s) to two filecast recv, with positive
// acknowledgement, and checks every file and the sender's report: the
// rate must have risen far above the start (at 1 Mbit/s the 2 MiB tree
// would take 16 s), and with --max-rate it must stay under the bound.
func TestLabFilecastCC(t *testing.T) {
	l := lab.New(t, 3)
	src := t.TempDir()
	files := makeTree(t, src)
	for i, c := range []struct {
		name    string
		flags   []string
		rxFlags []string
		check   func(peak float64) bool
		want    string
	}{
		{"default", nil, nil, func(peak float64) bool { return peak >= 20 }, "at least 20"},
		{"max-rate=30M", []string{"--max-rate", "30M"}, nil, func(peak float64) bool { return peak > 2 && peak <= 30.01 }, "between 2 and 30"},
		// 1 % random loss at the receivers, counted as congestion only
		// when two losses come within a round trip: the files arrive and
		// the rate leaves its start. (How much faster than without the
		// flag is TestCCTolerateLoss's business, in simrun: on two busy
		// cores under -race the peak swings between 5 and 80 Mbit/s.)
		{"tolerate-loss", nil, []string{"--rx-loss", "1%", "--tolerate-loss"}, func(peak float64) bool { return peak > 2 }, "above 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			group := fmt.Sprintf("239.255.10.5:%d", 7300+i)
			rs := startRecv(t, l.Hosts[1:], group,
				append([]string{"--count", fmt.Sprint(len(files)), "--idle-timeout", "30s"}, c.rxFlags...)...)
			time.Sleep(500 * time.Millisecond) // receivers join
			var out, errOut bytes.Buffer
			var code int
			_ = l.Hosts[0].Do(func() error {
				code = run(append([]string{"send", "--group", group, "--iface", lab.Iface, "--cc", "--ack", "auto", "--json"},
					append(c.flags, filepath.Join(src, "tree"))...), &out, &errOut)
				return nil
			})
			rs.wg.Wait()
			var rep sendReport
			if err := json.Unmarshal(out.Bytes(), &rep); err != nil || code != 0 || rep.Files != len(files) {
				t.Fatalf("send: exit %d, %v\n%s\n%s", code, err, out.String(), errOut.String())
			}
			t.Logf("%d bytes in %.2f s (%.1f Mbit/s); rate %.1f Mbit/s at the end, %.1f at most",
				rep.Bytes, rep.Seconds, rep.Mbps, rep.CCFinalMbps, rep.CCPeakMbps)
			if !c.check(rep.CCPeakMbps) {
				t.Errorf("congestion control peaked at %.1f Mbit/s, want %s", rep.CCPeakMbps, c.want)
			}
			rs.check(t, files)
		})
	}
}
