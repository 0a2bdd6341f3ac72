package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// TestMain lets a test run filecast as a process of its own (to signal or
// kill it): the test binary, started with FILECAST_RUN_MAIN=1, is filecast.
func TestMain(m *testing.M) {
	if os.Getenv("FILECAST_RUN_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func TestParseNode(t *testing.T) {
	for in, want := range map[string]uint32{"10.0.0.2": 0x0a000002, "0x0b000001": 0x0b000001, "7": 7, "4294967294": 0xfffffffe} {
		if got, err := parseNode(in); err != nil || got != want {
			t.Errorf("%q: %08x %v, want %08x", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0.0.0.0", "255.255.255.255", "0xffffffff", "4294967296", "fd00::1", "host"} {
		if got, err := parseNode(in); err == nil {
			t.Errorf("%q accepted as %08x", in, got)
		}
	}
	for _, args := range [][]string{{"send", "--node", "0", "x"}, {"recv", "--node", "0", "--dir", t.TempDir()}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--node: bad node id") {
			t.Errorf("%v: exit %d, %q", args, code, errOut.String())
		}
	}
}

// TestStoreCleanup: objects whose temporary file was made but that never
// finished (still arriving when the receiver stopped, or never taken up)
// leave no .part file after cleanup; finished ones stay.
func TestStoreCleanup(t *testing.T) {
	dir := t.TempDir()
	st, _ := newStore(dir)
	for id := range uint16(3) {
		w, err := st.sink(session.ObjectInfo{Sender: 0x0a000001, ID: session.ObjectID(id), Kind: session.KindFile, Size: 10, Info: []byte("f")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt([]byte("half"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if r := writeObject(t, st, 9, "done.bin", []byte("x"), digest([]byte("x"))); !r.OK {
		t.Fatalf("finished object: %+v", r)
	}
	st.cleanup()
	noTempFiles(t, dir)
	if _, err := os.Stat(filepath.Join(dir, "done.bin")); err != nil {
		t.Fatalf("cleanup removed a finished file: %v", err)
	}
}

// recvIn runs filecast recv in h and returns its exit status and output.
func recvIn(h *lab.Host, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	var code int
	_ = h.Do(func() error {
		code = run(append([]string{"recv"}, args...), &out, &errOut)
		return nil
	})
	return code, out.String(), errOut.String()
}

// TestLabRecvExitStatus: filecast recv fails when it stops short of
// --count, whether the idle timeout fired or the session ended under it.
func TestLabRecvExitStatus(t *testing.T) {
	l := lab.New(t, 1)
	h := l.Hosts[0]
	t.Run("idle", func(t *testing.T) {
		code, _, errOut := recvIn(h, "--dir", t.TempDir(), "--group", "239.255.10.6:7400", "--count", "1", "--idle-timeout", "300ms")
		if code == 0 || !strings.Contains(errOut, "no file arrived for 300ms with 0 of 1 files received") {
			t.Fatalf("idle before --count: exit %d, %q", code, errOut)
		}
	})
	t.Run("idle-no-count", func(t *testing.T) {
		if code, _, errOut := recvIn(h, "--dir", t.TempDir(), "--group", "239.255.10.6:7401", "--idle-timeout", "300ms"); code != 0 {
			t.Fatalf("idle without --count is the normal end: exit %d, %q", code, errOut)
		}
	})
	t.Run("session-ends", func(t *testing.T) {
		dir := t.TempDir()
		st, _ := newStore(dir)
		var s *session.Session
		if err := h.Do(func() (err error) {
			s, err = session.New(session.Config{Group: netip.MustParseAddrPort("239.255.10.6:7402"), FileSink: st.sink})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		done := make(chan int)
		var errOut bytes.Buffer
		go func() { done <- receiveLoop(context.Background(), s, st, 0, 0, 0, false, &bytes.Buffer{}, &errOut) }()
		time.Sleep(100 * time.Millisecond)
		_ = s.Shutdown(context.Background()) // the session dies under the loop
		select {
		case code := <-done:
			if code == 0 || !strings.Contains(errOut.String(), "the session ended") {
				t.Fatalf("session ended: exit %d, %q", code, errOut.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the receive loop did not notice that the session ended")
		}
	})
}

// TestLabSameHost: filecast send and recv in one namespace with default
// flags deliver the file; two receivers next to a sender --ack auto are two
// nodes to it, both acknowledging; and so is a receiver in a process of its
// own.
func TestLabSameHost(t *testing.T) {
	l := lab.New(t, 1)
	h := l.Hosts[0]
	data := make([]byte, 500_000)
	for i := range data {
		data[i] = byte(i * 31)
	}
	path := filepath.Join(t.TempDir(), "same.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		receivers int
		sendArgs  []string
	}{
		{"defaults", 1, nil},
		{"two-receivers-ack-auto", 2, []string{"--ack", "auto"}},
	} {
		// --ack auto waits for the receivers the sender has heard from;
		// one that loses nothing may never speak before the first
		// acknowledgement ends the wait (answers to the sender's probes
		// suppress each other). A little loss makes both ask for repairs.
		var rxLoss []string
		if c.sendArgs != nil {
			rxLoss = []string{"--rx-loss", "3%"}
		}
		t.Run(c.name, func(t *testing.T) {
			dirs := make([]string, c.receivers)
			codes := make([]int, c.receivers)
			outs := make([]string, c.receivers)
			var wg sync.WaitGroup
			for r := range dirs {
				dirs[r] = t.TempDir()
				wg.Go(func() {
					// --count to end; the idle timeout only bounds a failure.
					codes[r], outs[r], _ = recvIn(h, append([]string{"--dir", dirs[r], "--count", "1", "--idle-timeout", "20s"}, rxLoss...)...)
				})
			}
			time.Sleep(300 * time.Millisecond) // receivers join
			var out, errOut bytes.Buffer
			var code int
			_ = h.Do(func() error {
				code = run(append(append([]string{"send"}, c.sendArgs...), path), &out, &errOut)
				return nil
			})
			wg.Wait()
			if code != 0 {
				t.Errorf("send: exit %d\n%s\n%s", code, out.String(), errOut.String())
			}
			if n := strings.Count(errOut.String(), " acknowledged everything"); c.sendArgs != nil && n != c.receivers {
				t.Errorf("send --ack auto: %d acknowledgements, want %d:\n%s", n, c.receivers, errOut.String())
			}
			for r := range dirs {
				got, err := os.ReadFile(filepath.Join(dirs[r], "same.bin"))
				if codes[r] != 0 || err != nil || !bytes.Equal(got, data) {
					t.Errorf("receiver %d on the sender's host: exit %d, %v (equal %v)\n%s", r, codes[r], err, bytes.Equal(got, data), outs[r])
				}
			}
		})
	}
	t.Run("two-processes", func(t *testing.T) {
		dir := t.TempDir()
		c := startChild(t, h, "recv", "--dir", dir, "--count", "1", "--idle-timeout", "20s")
		var out, errOut bytes.Buffer
		var code int
		_ = h.Do(func() error {
			code = run([]string{"send", "--ack", "auto", path}, &out, &errOut)
			return nil
		})
		if code != 0 || !strings.Contains(errOut.String(), c.id+" acknowledged everything") {
			t.Errorf("send: exit %d; the receiver is %s\n%s", code, c.id, errOut.String())
		}
		got, err := os.ReadFile(filepath.Join(dir, "same.bin"))
		if rc := c.wait(20 * time.Second); rc != 0 || err != nil || !bytes.Equal(got, data) {
			t.Errorf("receiver process: exit %d, %v (equal %v)\n%s", rc, err, bytes.Equal(got, data), c.stderr())
		}
	})
}

// child is filecast running as a process of its own in a lab host.
type child struct {
	cmd  *exec.Cmd
	node chan string // the node id it prints at start
	id   string      // that id, once started
	mu   sync.Mutex
	err  strings.Builder
	done chan struct{} // stderr read to its end
	out  lockedBuffer  // its standard output
}

func startChild(t *testing.T, h *lab.Host, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{node: make(chan string, 1), done: make(chan struct{})}
	c.cmd = exec.Command("ip", append([]string{"netns", "exec", h.NS, exe}, args...)...)
	c.cmd.Env = append(os.Environ(), "FILECAST_RUN_MAIN=1")
	c.cmd.Stdout = &c.out
	pipe, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cmd.Process.Kill(); <-c.done; _ = c.cmd.Wait() })
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.err.WriteString(line + "\n")
			c.mu.Unlock()
			if rest, ok := strings.CutPrefix(line, "filecast recv: node id "); ok {
				c.node <- strings.Fields(rest)[0]
			}
		}
	}()
	select {
	case c.id = <-c.node:
	case <-time.After(10 * time.Second):
		t.Fatalf("filecast %v did not start: %s", args, c.stderr())
	}
	return c
}

func (c *child) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err.String()
}

// wait returns the child's exit status, or -1 if it has not ended within d.
func (c *child) wait(d time.Duration) int {
	select {
	case <-c.done:
	case <-time.After(d):
		return -1
	}
	_ = c.cmd.Wait()
	return c.cmd.ProcessState.ExitCode()
}

// waitPart waits up to d for a .part file to appear in dir and reports
// whether one did.
func waitPart(dir string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(dir, "*.part")); len(m) > 0 {
			return true
		}
	}
	return false
}

// TestLabRecvSignal: filecast recv interrupted (SIGINT) or terminated
// (SIGTERM) in the middle of a file exits non-zero and leaves no .part file.
func TestLabRecvSignal(t *testing.T) {
	l := lab.New(t, 2)
	data := make([]byte, 2<<20)
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			group := fmt.Sprintf("239.255.10.7:%d", 7500+i)
			dir := t.TempDir()
			c := startChild(t, l.Hosts[1], "recv", "--dir", dir, "--group", group, "--iface", lab.Iface, "--count", "1")
			var s *session.Session
			if err := l.Hosts[0].Do(func() (err error) {
				// 2 MiB at 250 kB/s: 8 s, the signal comes in the middle.
				s, err = session.New(session.Config{Group: netip.MustParseAddrPort(group), Interface: lab.Iface,
					Sender: sender.Config{Rate: 250e3}})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = s.Shutdown(ctx)
			}()
			if _, err := s.SendFile(context.Background(), bytes.NewReader(data), int64(len(data)), []byte("big.bin")); err != nil {
				t.Fatal(err)
			}
			if !waitPart(dir, 5*time.Second) {
				t.Fatalf("no file started arriving: %s", c.stderr())
			}
			if err := c.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			code := c.wait(10 * time.Second)
			if code <= 0 || !strings.Contains(c.stderr(), "interrupted with 0 of 1 files received") {
				t.Errorf("after %v: exit %d\n%s", sig, code, c.stderr())
			}
			noTempFiles(t, dir)
		})
	}
}

// TestLabAckAutoReceiverKilled: with --ack auto, a receiver killed in the
// middle of the transfer is named as not acknowledging, and the sender
// exits non-zero; the receiver that stayed acknowledges.
func TestLabAckAutoReceiverKilled(t *testing.T) {
	l := lab.New(t, 3)
	data := make([]byte, 4<<20)
	path := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	group := "239.255.10.8:7600"
	victimDir := t.TempDir()
	// Loss makes both receivers ask for repairs at once, so the sender
	// hears of them (see TestLabSameHost), this one before it dies.
	victim := startChild(t, l.Hosts[1], "recv", "--dir", victimDir, "--group", group, "--iface", lab.Iface,
		"--count", "1", "--rx-loss", "10%")
	rs := startRecv(t, l.Hosts[2:], group, "--count", "1", "--idle-timeout", "60s", "--rx-loss", "3%")
	time.Sleep(300 * time.Millisecond)
	go func() {
		waitPart(victimDir, 10*time.Second)
		time.Sleep(500 * time.Millisecond)
		_ = victim.cmd.Process.Kill()
	}()
	var out, errOut bytes.Buffer
	var code int
	_ = l.Hosts[0].Do(func() error {
		code = run([]string{"send", "--group", group, "--iface", lab.Iface, "--rate", "16M", "--ack", "auto", path}, &out, &errOut)
		return nil
	})
	rs.check(t, map[string][]byte{"f.bin": data})
	if code == 0 || !strings.Contains(errOut.String(), victim.id+" did not acknowledge") ||
		strings.Count(errOut.String(), " acknowledged everything") != 1 {
		t.Fatalf("send: exit %d; the killed receiver is %s\n%s", code, victim.id, errOut.String())
	}
}
