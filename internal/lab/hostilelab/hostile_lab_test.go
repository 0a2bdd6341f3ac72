// Package hostilelab holds the lab test of a hostile host on the group: a
// real transfer between namespaces while a third host attacks it.
package hostilelab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// The transfer: 32 MiB at 40 MB/s.
const (
	size = 32 << 20
	rate = 40e6
)

const (
	txNode   = 0x0a630001
	rxNode   = 0x0b630001
	roleEnv  = "SHOAL_HOSTILE_LAB_SENDER"
	groupEnv = "SHOAL_HOSTILE_LAB_GROUP"
	// profEnv, if set in the test's environment, names a directory where
	// each sender process writes a CPU profile (sender-PORT.pprof): where
	// the attacks cost the sender its CPU.
	profEnv = "SHOAL_HOSTILE_LAB_CPUPROFILE"
)

// TestMain runs the sender as a process of its own when roleEnv is set,
// so that its CPU time (user and system, from the kernel's accounting of
// the process) is the sender's alone.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "1" {
		os.Exit(runSender())
	}
	os.Exit(m.Run())
}

func pattern(n int) []byte {
	b := make([]byte, n)
	x := uint32(2654435761)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// runSender sends one data object of size bytes and waits until the receiver
// acknowledges it; it exits non-zero if it does not. It is a send-only
// session (session.Config.SendOnly), as filecast send runs one. Before it
// sends it writes the CPU time the process has used so far (making the
// payload, mostly) to stderr, as "cpu before sending: NANOSECONDS".
func runSender() int {
	group, err := netip.ParseAddrPort(os.Getenv(groupEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if dir := os.Getenv(profEnv); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("sender-%d.pprof", group.Port())))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	data := pattern(size)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Fprintf(os.Stderr, "cpu before sending: %d\n", (time.Duration(ru.Utime.Nano()) + time.Duration(ru.Stime.Nano())).Nanoseconds())
	s, err := session.New(session.Config{Group: group, Interface: lab.Iface, NodeID: txNode, SendOnly: true,
		Sender: sender.Config{Rate: rate, AckingNodes: []uint32{rxNode}, FlushTime: 10 * time.Second}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	id, err := s.SendBytes(ctx, data, []byte("big"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := s.WaitAck(ctx, id)
	fmt.Fprintf(os.Stderr, "sender stats: %+v\nsender rx: %+v\n", s.Stats().Sender, s.Stats().Receiver)
	if err != nil || len(res) != 1 || res[0].Err != nil {
		fmt.Fprintf(os.Stderr, "acknowledgement: %v %v\n", res, err)
		return 1
	}
	return 0
}

// hostileHost runs attacks from a host on the group: it listens to the
// group to learn the sender, and sends each attack's packets at its pace,
// bounded in number and time.
type hostileHost struct {
	conn  *net.UDPConn
	group *net.UDPAddr
	mu    sync.Mutex
	atks  []*simrun.Attack
	stop  chan struct{}
	wg    sync.WaitGroup
	sent  atomic.Int64
}

func startHostile(t *testing.T, h *lab.Host, group netip.AddrPort, kinds ...simrun.HostileKind) *hostileHost {
	t.Helper()
	hh := &hostileHost{group: net.UDPAddrFromAddrPort(group), stop: make(chan struct{})}
	for _, k := range kinds {
		a, err := simrun.NewAttack(k, 18)
		if err != nil {
			t.Fatal(err)
		}
		hh.atks = append(hh.atks, a)
	}
	if err := h.Do(func() error {
		ifi, err := net.InterfaceByName(lab.Iface)
		if err != nil {
			return err
		}
		hh.conn, err = net.ListenMulticastUDP("udp4", ifi, hh.group)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	hh.wg.Add(1 + len(hh.atks))
	go hh.listen()
	for _, a := range hh.atks {
		go hh.attack(a)
	}
	t.Cleanup(hh.close)
	return hh
}

func (hh *hostileHost) listen() {
	defer hh.wg.Done()
	buf := make([]byte, 65536)
	for {
		_ = hh.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := hh.conn.ReadFromUDP(buf)
		select {
		case <-hh.stop:
			return
		default:
		}
		if err != nil {
			continue
		}
		hh.mu.Lock()
		for _, a := range hh.atks {
			a.Heard(buf[:n])
		}
		hh.mu.Unlock()
	}
}

// attack sends a's packets, at most 60,000 and for at most a minute.
func (hh *hostileHost) attack(a *simrun.Attack) {
	defer hh.wg.Done()
	tick := time.NewTicker(a.Interval())
	defer tick.Stop()
	end := time.After(time.Minute)
	for range 60_000 {
		select {
		case <-hh.stop:
			return
		case <-end:
			return
		case <-tick.C:
		}
		hh.mu.Lock()
		if a.Ready() {
			if _, err := hh.conn.WriteToUDP(a.Next(), hh.group); err == nil {
				hh.sent.Add(1)
			}
		}
		hh.mu.Unlock()
	}
}

func (hh *hostileHost) close() {
	select {
	case <-hh.stop:
		return
	default:
	}
	close(hh.stop)
	hh.wg.Wait()
	_ = hh.conn.Close()
}

// cpuFigures are a sender process's CPU times: in all, and from when it
// began to send (without making the payload).
type cpuFigures struct{ all, send time.Duration }

func (c cpuFigures) String() string {
	return fmt.Sprintf("CPU %v, %v of it sending", c.all.Round(time.Millisecond), c.send.Round(time.Millisecond))
}

// transfer runs one transfer of size bytes from host 0 (a sender process) to
// host 1, with attacks from host 2 if any, and returns how long it took
// until the receiver held the object intact, and the CPU time of the
// sender process.
func transfer(t *testing.T, l *lab.Lab, port int, kinds ...simrun.HostileKind) (took time.Duration, cpu cpuFigures) {
	t.Helper()
	group := netip.MustParseAddrPort("239.255.18.1:" + strconv.Itoa(port))
	var rx *session.Session
	if err := l.Hosts[1].Do(func() (err error) {
		rx, err = session.New(session.Config{Group: group, Interface: lab.Iface, NodeID: rxNode})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = rx.Shutdown(ctx)
	}()
	var hh *hostileHost
	if len(kinds) > 0 {
		hh = startHostile(t, l.Hosts[2], group, kinds...)
		defer hh.close()
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.Hosts[0].NS, exe)
	cmd.Env = append(os.Environ(), roleEnv+"=1", groupEnv+"="+group.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	want := pattern(size)
	for took == 0 {
		o, err := rx.Accept(ctx)
		if err != nil {
			t.Fatalf("%v: no object from the sender: %v; receiver %+v; sender: %s", kinds, err, rx.Stats().Receiver, stderr.String())
		}
		if o.Info().Sender != txNode {
			_ = o.Close() // a forged sender's: any host can offer objects
			continue
		}
		if err := o.Wait(ctx); err != nil {
			t.Fatalf("%v: object: %v; receiver %+v", kinds, err, rx.Stats().Receiver)
		}
		took = time.Since(start)
		if !bytes.Equal(o.Bytes(), want) {
			t.Fatalf("%v: %d bytes received, not the %d sent", kinds, len(o.Bytes()), size)
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("%v: sender: %v\n%s", kinds, err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%v: the sender did not end after the receiver completed", kinds)
	}
	cpu.all = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var before int64
	if _, err := fmt.Sscanf(stderr.String(), "cpu before sending: %d", &before); err != nil {
		t.Fatalf("%v: sender's output %q: %v", kinds, stderr.String(), err)
	}
	cpu.send = cpu.all - time.Duration(before)
	sent := int64(0)
	if hh != nil {
		hh.close()
		sent = hh.sent.Load()
	}
	t.Logf("%v: %v, sender %v, %d hostile packets; receiver %+v; %s", kinds, took.Round(time.Millisecond),
		cpu, sent, rx.Stats().Receiver, stderr.String())
	return took, cpu
}

// TestLabHostileHost: a third host on the group sends NACKs asking for
// absurd block ranges (50 a second from one fake node id) and NORM_DATA
// from 64 fake sender ids announcing 256 MiB in-memory objects and streams
// of 65,000-byte symbols, while a real 32 MiB transfer goes on. It used
// to take the sender 47 s of CPU and the transfer never ended. The
// transfer completes intact within twice its clean time, and the sender
// process uses at most twice its clean CPU time (issue 18's bounds).
//
// The sender is a send-only session, as filecast send runs one: the
// forged senders' packets, and its own looped back, are dropped by a
// socket filter, so only the forged NACKs cost it (the repairs they get).
// Measured on a loaded 2-core machine it uses 0.9-1.6 times its clean
// CPU. A session that also receives pays for the 64 forged senders'
// blocks and NACK cycles in its receiver engine as well: 2.0-2.5 times
// the clean CPU before this bound was tightened, 1.7-2.2 times since Poll
// skips senders with nothing due and a forged block's first symbol costs
// its own size (BenchmarkForgedSenders in receiver), so this test does not
// hold such a session to 2x. The CPU counts making the 32 MiB payload
// (about 200 ms), the same in both runs; the log gives the CPU from the
// start of sending as well, a noisier figure (its clean value is
// 100-250 ms). Timing on a shared machine is noisy: a pair of runs over
// either bound is run once more.
func TestLabHostileHost(t *testing.T) {
	if testing.Short() {
		t.Skip("lab transfers of 32 MiB")
	}
	if raceEnabled {
		// The race detector slows the in-process receiver tenfold: under
		// a thousand forged packets a second it falls behind and holds the
		// sender back (EXT_PACE), which measures the detector, not Shoal.
		t.Skip("timing comparison meaningless under the race detector")
	}
	l := lab.New(t, 3)
	attacks := []simrun.HostileKind{simrun.HostileNackRange, simrun.HostileFakeSenders}
	for try := range 2 {
		port := 7180 + 2*try
		clean, cleanCPU := transfer(t, l, port)
		took, cpu := transfer(t, l, port+1, attacks...)
		t.Logf("clean %v (%v); under attack %v (%v): time %.2fx, CPU %.2fx, sending %.2fx", clean, cleanCPU, took, cpu,
			took.Seconds()/clean.Seconds(), cpu.all.Seconds()/cleanCPU.all.Seconds(), cpu.send.Seconds()/cleanCPU.send.Seconds())
		if took <= 2*clean && cpu.all <= 2*cleanCPU.all {
			return
		}
		if try == 1 {
			t.Fatalf("under attack the transfer took %v (clean %v) and the sender used %v (clean %v): want at most twice the time and the CPU",
				took, clean, cpu, cleanCPU)
		}
	}
}
