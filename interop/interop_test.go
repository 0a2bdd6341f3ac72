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

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/framing"
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

// shoalSend sends objs from a Shoal session on h and returns the session
// and the last object's id.
func shoalSend(t *testing.T, h *lab.Host, group netip.AddrPort, objs []object, scfg sender.Config) (*session.Session, session.ObjectID) {
	t.Helper()
	var s *session.Session
	if err := h.Do(func() (err error) {
		s, err = session.New(session.Config{Group: group, Interface: lab.Iface, Sender: scfg})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var last session.ObjectID
	for _, o := range objs {
		var err error
		switch o.kind {
		case "data", "empty":
			last, err = s.SendBytes(ctx, o.data, []byte(o.name))
		case "file":
			last, err = s.SendFile(ctx, bytes.NewReader(o.data), int64(len(o.data)), []byte(o.name))
		case "file+ext":
			// filecast's shape: a 36-byte header extension of type 100 (its
			// SHA-256) on the NORM_INFO, unknown to libnorm.
			raw := make([]byte, 36)
			raw[0], raw[1] = 100, 9
			copy(raw[4:], content(32, 99))
			ext, xerr := framing.AppendExtension(nil, raw)
			if xerr != nil {
				t.Fatal(xerr)
			}
			last, err = s.SendFileExt(ctx, bytes.NewReader(o.data), int64(len(o.data)), []byte(o.name), ext)
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
	return s, last
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

// matrix is what the transfer tests run: nftables loss on the receivers,
// with and without FEC (block 64, on-demand parity up to 16, auto parity).
var matrix = []matrixCase{{0, 0, 0}, {10, 0, 0}, {0, 16, 4}, {10, 16, 4}}

type matrixCase struct{ loss, parity, auto int }

func (c matrixCase) String() string {
	return fmt.Sprintf("loss=%d%%/parity=%d/auto=%d", c.loss, c.parity, c.auto)
}

func setLoss(t *testing.T, hosts []*lab.Host, percent int) {
	t.Helper()
	for _, h := range hosts {
		if err := h.SetLoss(percent); err != nil {
			t.Fatal(err)
		}
	}
}

// TestShoalToLibnorm: a Shoal sender, two libnorm receivers; every object
// kind, several in a row, an empty one; with and without loss and FEC.
func TestShoalToLibnorm(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	objs := testObjects()
	for i, c := range matrix {
		t.Run(c.String(), func(t *testing.T) {
			setLoss(t, l.Hosts[1:], c.loss)
			group := netip.MustParseAddrPort(fmt.Sprintf("239.255.20.1:%d", 7500+i))
			wait := peerRecv(t, bin, l.Hosts[1:], group, len(objs))
			time.Sleep(time.Second)
			s, _ := shoalSend(t, l.Hosts[0], group, objs, sender.Config{Rate: 5e6, Parity: c.parity, AutoParity: c.auto, GRTT: 10 * time.Millisecond})
			lines, dirs := wait()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Shutdown(ctx)
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
		_ = s.Shutdown(ctx)
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

// peerSend starts a normpeer sender on h and returns a function that waits
// for it and returns its output.
func peerSend(t *testing.T, bin string, h *lab.Host, group netip.AddrPort, args ...string) func() (string, error) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, bin, "send", "--addr", group.Addr().String(),
		"--port", fmt.Sprint(group.Port()), "--iface", lab.Iface, "--id", fmt.Sprint(nodeID(h.IP4)), "--timeout", "60"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return func() (string, error) {
		err := cmd.Wait()
		return out.String(), err
	}
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
	for i, c := range matrix {
		t.Run(c.String(), func(t *testing.T) {
			setLoss(t, l.Hosts[1:], c.loss)
			group := netip.MustParseAddrPort(fmt.Sprintf("239.255.22.1:%d", 7700+i))
			var rx []*session.Session
			for _, h := range l.Hosts[1:] {
				rx = append(rx, shoalRecv(t, h, group, session.Config{}))
			}
			time.Sleep(500 * time.Millisecond)
			wait := peerSend(t, bin, l.Hosts[0], group, append([]string{"--rate", "40000000",
				"--parity", fmt.Sprint(c.parity), "--auto", fmt.Sprint(c.auto)}, args...)...)
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
			if out, err := wait(); err != nil {
				t.Errorf("normpeer sender: %v\n%s", err, out)
			}
		})
	}
}

// TestLibnormCC: a libnorm sender in congestion-control mode, starting at
// one segment per second as the reference's file-cast tool does, sends
// 8 MiB to two Shoal receivers. Only their ACK(CC) feedback can raise its
// rate: at the starting rate the transfer would take over an hour, so
// finishing within the deadline shows the feedback works.
func TestLibnormCC(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	data := content(8<<20, 9)
	objs := []object{{"data", "cc.bin", data}}
	args := writeObjects(t, t.TempDir(), objs)
	group := netip.MustParseAddrPort("239.255.24.1:7900")
	var rx []*session.Session
	for _, h := range l.Hosts[1:] {
		rx = append(rx, shoalRecv(t, h, group, session.Config{}))
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	wait := peerSend(t, bin, l.Hosts[0], group, append([]string{"--cc", "--rate", fmt.Sprint(1400 * 8)}, args...)...)
	var acks uint64
	for r, s := range rx {
		got := collect(t, s, 1, 45*time.Second)
		if !bytes.Equal(got["cc.bin"], data) {
			t.Errorf("shoal receiver %d: %d of %d bytes, equal %v", r, len(got["cc.bin"]), len(data), bytes.Equal(got["cc.bin"], data))
		}
		// One receiver's answers may suppress the other's (§5.5.2).
		acks += s.Stats().Receiver.AcksSent
	}
	if acks == 0 {
		t.Error("the Shoal receivers sent no ACK(CC)")
	}
	elapsed := time.Since(start)
	t.Logf("8 MiB under libnorm congestion control in %v (%.1f Mbit/s)", elapsed.Round(time.Millisecond), float64(len(data))*8/elapsed.Seconds()/1e6)
	if out, err := wait(); err != nil {
		t.Errorf("normpeer sender: %v\n%s", err, out)
	}

	// The control: with a silent receiver the same sender must not ramp up,
	// or the run above would prove nothing about the feedback.
	group = netip.MustParseAddrPort("239.255.24.1:7901")
	quiet := shoalRecv(t, l.Hosts[1], group, session.Config{Receiver: receiver.Config{Silent: true}})
	time.Sleep(500 * time.Millisecond)
	_ = peerSend(t, bin, l.Hosts[0], group, append([]string{"--cc", "--rate", fmt.Sprint(1400 * 8)}, args...)...)
	time.Sleep(4 * time.Second)
	if n := quiet.Stats().Receiver.DataSymbols; n > 100 {
		t.Errorf("without feedback the libnorm sender still sent %d segments in 4 s", n)
	} else {
		t.Logf("without feedback: %d segments in 4 s", n)
	}
}

// TestAckShoalSender: a Shoal sender's watermark, acknowledged by two
// libnorm receivers, under 10% loss; and a node that does not exist, which
// must be reported as not acknowledging. The second object carries a header
// extension libnorm does not know, as filecast's files do.
func TestAckShoalSender(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	objs := []object{{"data", "a1.bin", content(200_000, 5)}, {"file+ext", "a2.bin", content(300_000, 6)}}
	group := netip.MustParseAddrPort("239.255.26.1:8100")
	setLoss(t, l.Hosts[1:], 10)
	waitRx := peerRecv(t, bin, l.Hosts[1:], group, len(objs))
	time.Sleep(time.Second)
	const ghost = 0x0a0000fe
	nodes := []uint32{nodeID(l.Hosts[1].IP4), nodeID(l.Hosts[2].IP4), ghost}
	s, last := shoalSend(t, l.Hosts[0], group, objs, sender.Config{Rate: 20e6, GRTT: 10 * time.Millisecond, AckingNodes: nodes})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := s.WaitAck(ctx, last)
	if err != nil && len(results) != len(nodes) {
		t.Fatalf("WaitAck: %v (%v)", err, results)
	}
	got := map[uint32]error{}
	for _, r := range results {
		got[uint32(r.Node)] = r.Err
	}
	for _, n := range nodes[:2] {
		if e, ok := got[n]; !ok || e != nil {
			t.Errorf("libnorm receiver %08x: answered %v, err %v", n, ok, e)
		}
	}
	if e := got[ghost]; e == nil {
		t.Errorf("node %08x does not exist yet was counted as acknowledging", ghost)
	}
	lines, dirs := waitRx()
	_ = s.Shutdown(ctx)
	for r := range lines {
		checkPeerGot(t, r, lines[r], dirs[r], objs)
	}
}

// TestAckLibnormSender: a libnorm sender's watermark, acknowledged by two
// Shoal receivers, under 10% loss.
func TestAckLibnormSender(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	objs := []object{{"data", "b1.bin", content(200_000, 7)}, {"file", "b2.bin", content(300_000, 8)}}
	args := writeObjects(t, t.TempDir(), objs)
	group := netip.MustParseAddrPort("239.255.28.1:8300")
	var rx []*session.Session
	var ids []string
	setLoss(t, l.Hosts[1:], 10)
	for _, h := range l.Hosts[1:] {
		s := shoalRecv(t, h, group, session.Config{})
		rx = append(rx, s)
		ids = append(ids, fmt.Sprint(uint32(s.NodeID())))
	}
	time.Sleep(500 * time.Millisecond)
	wait := peerSend(t, bin, l.Hosts[0], group, append([]string{"--rate", "20000000", "--ack", strings.Join(ids, ",")}, args...)...)
	for r, s := range rx {
		got := collect(t, s, len(objs), 30*time.Second)
		for _, o := range objs {
			if !bytes.Equal(got[o.name], o.data) {
				t.Errorf("shoal receiver %d: %s: %d of %d bytes", r, o.name, len(got[o.name]), len(o.data))
			}
		}
	}
	out, err := wait()
	if err != nil {
		t.Errorf("normpeer sender: %v\n%s", err, out)
	}
	for _, s := range rx {
		if want := fmt.Sprintf("ACK %08x ok", uint32(s.NodeID())); !strings.Contains(out, want) {
			t.Errorf("libnorm sender did not report %q:\n%s", want, out)
		}
	}
}

// ccObjects is what the congestion-control test sends: 8 MiB in three
// objects of two kinds.
func ccObjects() []object {
	return []object{
		{"data", "cc1.bin", content(3<<20, 11)},
		{"file", "cc2.bin", content(4<<20, 12)},
		{"data", "cc3.bin", content(1<<20, 13)},
	}
}

// ccRun is what a congestion-controlled Shoal sender did in one transfer.
type ccRun struct {
	elapsed time.Duration // from the first object queued to the last acknowledgement
	peak    float64       // highest rate sampled, bytes per second
	samples []ccSample    // every 20 ms
	final   sender.Stats  // right after the last acknowledgement
}

type ccSample struct {
	at   time.Duration
	rate float64 // bytes per second
	clr  uint32
}

// trace renders the sampled rate every 100 ms, in Mbit/s.
func (r ccRun) trace() string {
	var b strings.Builder
	next := time.Duration(0)
	for _, s := range r.samples {
		if s.at >= next {
			fmt.Fprintf(&b, " %.1f", s.rate*8/1e6)
			next = s.at + 100*time.Millisecond
		}
	}
	return b.String()
}

// shoalSendCC sends objs from a Shoal sender under congestion control on
// h to normpeer receivers on rx, waits until every receiver acknowledged
// the last object (positive ACK: the time the transfer took, as the sender
// sees it), and checks what the receivers wrote. The sender's statistics
// are sampled every 20 ms meanwhile.
func shoalSendCC(t *testing.T, bin string, h *lab.Host, rx []*lab.Host, group netip.AddrPort, objs []object) ccRun {
	t.Helper()
	wait := peerRecv(t, bin, rx, group, len(objs))
	time.Sleep(time.Second)
	var nodes []uint32
	for _, r := range rx {
		nodes = append(nodes, nodeID(r.IP4))
	}
	start := time.Now()
	s, last := shoalSend(t, h, group, objs, sender.Config{CC: &congestion.Config{}, GRTT: 10 * time.Millisecond, AckingNodes: nodes})
	var run ccRun
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			st := s.Stats().Sender
			run.peak = max(run.peak, st.Rate)
			run.samples = append(run.samples, ccSample{time.Since(start), st.Rate, st.CLR})
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	results, err := s.WaitAck(ctx, last)
	run.elapsed = time.Since(start)
	close(done)
	<-sampled
	run.final = s.Stats().Sender
	run.peak = max(run.peak, run.final.Rate)
	if err != nil {
		t.Errorf("WaitAck: %v (%v)", err, results)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Errorf("libnorm receiver %08x did not acknowledge: %v", uint32(r.Node), r.Err)
		}
	}
	lines, dirs := wait()
	_ = s.Shutdown(ctx)
	for r := range lines {
		checkPeerGot(t, r, lines[r], dirs[r], objs)
	}
	return run
}

// checkCC fails t unless the sender heard congestion feedback and elected
// its limiting receiver (CLR) from among rx, and only them.
func checkCC(t *testing.T, run ccRun, rx []*lab.Host) {
	t.Helper()
	if run.final.CCFeedback == 0 {
		t.Error("the Shoal sender counted no congestion feedback (EXT_CC) from the libnorm receivers")
	}
	if run.final.CLR == 0 {
		t.Error("the Shoal sender had no CLR when the transfer ended")
	}
	known := map[uint32]bool{}
	for _, r := range rx {
		known[nodeID(r.IP4)] = true
	}
	seen := map[uint32]bool{run.final.CLR: run.final.CLR != 0}
	for _, s := range run.samples {
		seen[s.clr] = s.clr != 0
	}
	for id, ok := range seen {
		if ok && !known[id] {
			t.Errorf("CLR %08x is none of the receivers", id)
		}
	}
}

// TestShoalCC: a Shoal sender under NORM-CC (RFC 5740 §5.5) sends 8 MiB in
// three objects to two libnorm receivers, starting at the controller's
// default rate of 1 Mbit/s. Only the libnorm receivers' congestion feedback
// (EXT_CC in their answers to the sender's CMD(CC) probes) can raise the
// rate, so the sender must elect one of them as its limiting receiver and
// leave the start rate far behind: at 1 Mbit/s the transfer would take over
// a minute. Then the same through a 50 Mbit/s token bucket on the sender's
// link, where the libnorm receivers' feedback must hold the rate near the
// link's.
func TestShoalCC(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	objs := ccObjects()
	total := 0
	for _, o := range objs {
		total += len(o.data)
	}
	const startRate = 125e3 // congestion.Config's default, bytes per second
	mbps := func(bytesPerSec float64) float64 { return bytesPerSec * 8 / 1e6 }
	report := func(t *testing.T, run ccRun) {
		t.Logf("%d MiB in %v (%.1f Mbit/s goodput); rate: start %.1f, peak %.1f, final %.1f Mbit/s; %d CC reports, final CLR %08x, slow start %v",
			total>>20, run.elapsed.Round(time.Millisecond), mbps(float64(total)/run.elapsed.Seconds()),
			mbps(startRate), mbps(run.peak), mbps(run.final.Rate), run.final.CCFeedback, run.final.CLR, run.final.SlowStart)
		t.Logf("rate every 100 ms (Mbit/s):%s", run.trace())
	}

	t.Run("free", func(t *testing.T) {
		run := shoalSendCC(t, bin, l.Hosts[0], l.Hosts[1:], netip.MustParseAddrPort("239.255.30.1:8500"), objs)
		report(t, run)
		checkCC(t, run, l.Hosts[1:])
		if run.peak < 40*startRate {
			t.Errorf("the rate peaked at %.2f Mbit/s, not well above the start rate of %.1f Mbit/s", mbps(run.peak), mbps(startRate))
		}
		if run.elapsed > 15*time.Second {
			t.Errorf("%d MiB took %v", total>>20, run.elapsed)
		}
	})

	t.Run("bottleneck=50Mbit", func(t *testing.T) {
		const link = 50e6 / 8
		if err := l.Hosts[0].SetRate("50mbit"); err != nil {
			t.Fatal(err)
		}
		run := shoalSendCC(t, bin, l.Hosts[0], l.Hosts[1:], netip.MustParseAddrPort("239.255.30.1:8501"), objs)
		report(t, run)
		checkCC(t, run, l.Hosts[1:])
		goodput := float64(total) / run.elapsed.Seconds()
		if goodput > link {
			t.Errorf("goodput %.1f Mbit/s above the %.0f Mbit/s link: the bottleneck is not in the path", mbps(goodput), mbps(link))
		}
		// The controller must have found the link from what the libnorm
		// receivers report: past it in slow start, then back below it (on
		// a loss, or, as slow start watches the RTT, on their round trip
		// growing while the queue fills). A rate that only rose, or never
		// reached the link, fails.
		var over, back bool
		for _, s := range run.samples {
			over = over || s.rate > link
			back = back || (over && s.rate < link)
		}
		if !over || !back {
			t.Errorf("the rate did not go past the link and back below it (past %v, back %v)", over, back)
		}
		// A controller that collapses or oscillates wildly falls far
		// below; measured: 0.85 of the link.
		if goodput < 0.5*link {
			t.Errorf("goodput %.1f Mbit/s is under half the %.0f Mbit/s link", mbps(goodput), mbps(link))
		}
	})
}

// TestStreamFlowLibnorm: a Shoal stream six times the size of its 4 MiB
// ring, through 5 % loss, to libnorm receivers listed as the sender's
// acking nodes (libnorm receivers do not announce themselves, so a sender
// knows them only from such a list or once it hears them). Shoal's flow
// control asks them to acknowledge the stream position with NORM watermark
// flushes; their answers release the ring, so the writer waits for them
// instead of overwriting data they still need, and every byte arrives.
func TestStreamFlowLibnorm(t *testing.T) {
	bin := peer(t)
	l := lab.New(t, 3)
	setLoss(t, l.Hosts[1:], 5)
	group := netip.MustParseAddrPort("239.255.20.9:7590")
	objs := []object{{"stream", "big.bin", content(24<<20, 9)}}
	wait := peerRecv(t, bin, l.Hosts[1:], group, len(objs))
	time.Sleep(time.Second)
	var nodes []uint32
	for _, h := range l.Hosts[1:] {
		nodes = append(nodes, nodeID(h.IP4))
	}
	s, _ := shoalSend(t, l.Hosts[0], group, objs, sender.Config{Rate: 12.5e6, Parity: 16, GRTT: 10 * time.Millisecond, AckingNodes: nodes})
	lines, dirs := wait()
	st := s.Stats().Sender
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
	t.Logf("writer held back %v; %d flow-control requests; %d squelches", st.FlowBlocked, st.FlowRequests, st.Squelches)
	for r := range lines {
		checkPeerGot(t, r, lines[r], dirs[r], objs)
	}
	if st.FlowRequests == 0 || st.FlowBlocked == 0 {
		t.Errorf("flow control never held the writer (%v, %d requests): the test lost its point", st.FlowBlocked, st.FlowRequests)
	}
	if st.Squelches != 0 {
		t.Errorf("%d squelches: data libnorm receivers needed was overwritten", st.Squelches)
	}
}
