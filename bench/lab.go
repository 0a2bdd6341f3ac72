package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// runLab measures a real transfer between network namespaces against a
// plain UDP multicast blast on the same path.
func runLab(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		size      int64 = 64 << 20
		loss      float64
		receivers = fs.Int("receivers", 2, "number of receiver hosts")
		parity    = fs.Int("parity", 16, "parity symbols per block for repair")
	)
	fs.Var(sizeFlag{&size}, "size", "file size, e.g. 64MiB")
	fs.Var(pctFlag{&loss}, "loss", "random loss on every receiver's link (nftables), e.g. 1%")
	auth := fs.Bool("auth", false, "authenticate every packet with a group key (HMAC-SHA-256; see package secure)")
	encrypt := fs.Bool("encrypt", false, "authenticate and encrypt every packet (AES-256-GCM)")
	sign := fs.Bool("sign", false, "also sign every packet (Ed25519 over batches of 16; implies --auth); receivers trust only the sender's key")
	signAlg := fs.String("sign-alg", "ed25519", "with --sign: ed25519 or p256 (ECDSA P-256)")
	burst := fs.Float64("burst", 0, "with -loss: lose packets in bursts of this mean length (Gilbert-Elliott), not independently")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cleanup, err := setupLabSecurity(*auth, *encrypt, *sign, *signAlg)
	if err != nil {
		fmt.Fprintf(stderr, "bench lab: %v\n", err)
		return 1
	}
	defer cleanup()
	if why := lab.Available(); why != "" {
		fmt.Fprintf(stderr, "bench lab: %s\n", why)
		return 1
	}
	l, done, err := openLab(*receivers + 1)
	defer done()
	if err != nil {
		fmt.Fprintf(stderr, "bench lab: %v\n", err)
		return 1
	}
	for _, h := range l.Hosts[1:] {
		if err := h.SetBurstLoss(loss*100, *burst); err != nil {
			fmt.Fprintf(stderr, "bench lab: %v\n", err)
			return 1
		}
	}
	cpu0 := processCPU()
	raw, err := rawBlast(l, size, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench lab: raw blast: %v\n", err)
		return 1
	}
	// On veth the kernel forwards to every receiver inside the sender's
	// send calls, so the blast's CPU cost is the floor to compare with.
	fmt.Fprintf(stderr, "bench lab: raw UDP multicast: %.0f Mbit/s, sender CPU %.2f s/GiB\n", raw,
		(processCPU()-cpu0)/(float64(size)/(1<<30)))
	// Try fixed rates around the raw limit and keep the best goodput.
	best, bestCPU := 0.0, 0.0
	for i, f := range []float64{0.5, 0.7, 0.9} {
		rate := raw * 1e6 / 8 * f
		g, cpu, err := shoalTransfer(l, size, rate, *parity, autoParity(loss, *parity), 7000+i, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench lab: transfer at %.0f Mbit/s: %v\n", rate*8/1e6, err)
			continue
		}
		fmt.Fprintf(stderr, "bench lab: rate %.0f Mbit/s: goodput %.0f Mbit/s, sender CPU %.2f s/GiB\n", rate*8/1e6, g, cpu)
		if g > best {
			best, bestCPU = g, cpu
		}
	}
	if best == 0 {
		fmt.Fprintln(stderr, "bench lab: no transfer completed")
		return 1
	}
	bursts := ""
	if *burst > 1 {
		bursts = fmt.Sprintf(" burst=%g", *burst)
	}
	fmt.Fprintf(stdout, "lab: receivers=%d size=%s loss=%s%s goodput_mbps=%.0f raw_udp_mbps=%.0f ratio=%.2f sender_cpu_s_per_gib=%.2f\n",
		*receivers, sizeName(size), pctName(loss), bursts, best, raw, best/raw, bestCPU)
	return 0
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprint(n)
}

func pctName(p float64) string { return strings.TrimSuffix(fmt.Sprintf("%g", p*100), ".0") + "%" }

// autoParity is the proactive parity for a known loss rate: enough for
// the average block's losses plus a quarter, so that most blocks need no
// NACK round at all, within the parity available.
func autoParity(loss float64, parity int) int {
	return min(parity, int(math.Ceil(64*loss*1.25)))
}

// rxResult is what a receiver process reports.
type rxResult struct {
	OK      bool    `json:"ok"`
	Err     string  `json:"err,omitempty"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// spawn starts this program as a helper inside host h's namespace and
// returns a channel with its one-line JSON result.
func spawn(h *lab.Host, args ...string) (*exec.Cmd, <-chan rxResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, self}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	ch := make(chan rxResult, 1)
	go func() {
		var r rxResult
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				break
			}
		}
		ch <- r
		_ = cmd.Wait()
	}()
	return cmd, ch, nil
}

// rawBlast sends size bytes of 1400-byte datagrams to the group as fast as
// one socket can, and returns the slowest receiver's throughput in Mbit/s.
func rawBlast(l *lab.Lab, size int64, stderr io.Writer) (float64, error) {
	group := netip.MustParseAddrPort("239.255.9.9:6999")
	var results []<-chan rxResult
	for _, h := range l.Hosts[1:] {
		_, ch, err := spawn(h, "lab-rawrx", "--group", group.String())
		if err != nil {
			return 0, err
		}
		results = append(results, ch)
	}
	time.Sleep(300 * time.Millisecond) // receivers join
	err := l.Hosts[0].Do(func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: l.Hosts[0].IP4.AsSlice()})
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetWriteBuffer(4 << 20)
		buf := make([]byte, 1432) // a NORM_DATA-sized datagram
		for sent := int64(0); sent < size; sent += 1400 {
			if _, err := c.WriteToUDPAddrPort(buf, group); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	worst := -1.0
	for _, ch := range results {
		select {
		case r := <-ch:
			if r.Seconds <= 0 {
				return 0, fmt.Errorf("a receiver got nothing")
			}
			mbps := float64(r.Bytes) * 8 / r.Seconds / 1e6
			if worst < 0 || mbps < worst {
				worst = mbps
			}
		case <-time.After(30 * time.Second):
			return 0, fmt.Errorf("raw receiver timed out")
		}
	}
	return worst, nil
}

// shoalTransfer sends a size-byte file through a session at rate bytes/s
// and returns the goodput in Mbit/s (size over the time until the last
// receiver holds it, verified) and the sender's CPU seconds per GiB.
func shoalTransfer(l *lab.Lab, size int64, rate float64, parity, auto, port int, stderr io.Writer) (float64, float64, error) {
	group := netip.MustParseAddrPort(fmt.Sprintf("239.255.8.8:%d", port))
	var results []<-chan rxResult
	for _, h := range l.Hosts[1:] {
		_, ch, err := spawn(h, append([]string{"lab-rx", "--group", group.String(), "--size", fmt.Sprint(size)}, helperArgs()...)...)
		if err != nil {
			return 0, 0, err
		}
		results = append(results, ch)
	}
	time.Sleep(300 * time.Millisecond)
	var tx *session.Session
	err := l.Hosts[0].Do(func() (err error) {
		// No receiver runs on the sender's host: loopback would only hand
		// the sender its own packets back.
		tx, err = session.New(session.Config{Group: group, Interface: lab.Iface, Seed: 1, DisableLoopback: true, Security: labSec.cfg,
			Sender: sender.Config{Rate: rate, Parity: parity, AutoParity: auto,
				// A LAN: start from a small GRTT estimate, as the reference's
				// file-cast tool does, instead of the WAN-safe 500 ms.
				GRTT: 5 * time.Millisecond}})
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = tx.Shutdown(ctx)
	}()
	if p := os.Getenv("SHOAL_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	cpu0 := processCPU()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := tx.SendFile(ctx, simrun.PatternReader(1, 0, size), size, []byte("bench.bin")); err != nil {
		return 0, 0, err
	}
	var times []float64
	for _, ch := range results {
		select {
		case r := <-ch:
			if !r.OK {
				return 0, 0, fmt.Errorf("receiver: %s", r.Err)
			}
			times = append(times, time.Since(start).Seconds())
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("receivers did not finish")
		}
	}
	cpu := processCPU() - cpu0
	st := tx.Stats()
	fmt.Fprintf(stderr, "bench lab:   sender: %d packets, %d repairs, %d NACKs, GRTT %v, GSO %v\n",
		st.PacketsSent, st.RepairsSent, st.NacksReceived, st.GRTT, st.GSO)
	sort.Float64s(times)
	last := times[len(times)-1]
	return float64(size) * 8 / last / 1e6, cpu / (float64(size) / (1 << 30)), nil
}

// report runs a helper's work and prints its result as one JSON line.
func report(stdout io.Writer, work func() (rxResult, error)) int {
	res, err := work()
	if err != nil {
		res.Err = err.Error()
	}
	_ = json.NewEncoder(stdout).Encode(res)
	if err != nil {
		return 1
	}
	return 0
}

// helperFlags parses a helper's flags: the group, and the size if asked.
func helperFlags(name string, args []string, size *int64) (netip.AddrPort, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	group := fs.String("group", "", "")
	fs.StringVar(&helperKey, "key", "", "")
	fs.StringVar(&helperTrust, "trust", "", "")
	if size != nil {
		fs.Int64Var(size, "size", 0, "")
	}
	if err := fs.Parse(args); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.ParseAddrPort(*group)
}

// labRx is the hidden helper that receives one object inside a lab host and
// prints an rxResult.
func labRx(args []string, stdout io.Writer) int {
	return report(stdout, func() (rxResult, error) {
		var size int64
		g, err := helperFlags("lab-rx", args, &size)
		if err != nil {
			return rxResult{}, err
		}
		sink := simrun.NewVerifySink(1, 0, size)
		sec, err := helperSecurity()
		if err != nil {
			return rxResult{}, err
		}
		s, err := session.New(session.Config{Group: g, Interface: lab.Iface, Security: sec,
			FileSink: func(session.ObjectInfo) (io.WriterAt, error) { return sink, nil }})
		if err != nil {
			return rxResult{}, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		defer func() {
			c, cc := context.WithTimeout(context.Background(), time.Second)
			defer cc()
			_ = s.Shutdown(c)
		}()
		o, err := s.Accept(ctx)
		if err != nil {
			return rxResult{}, err
		}
		start := time.Now()
		if err := o.Wait(ctx); err != nil {
			return rxResult{}, err
		}
		if err := sink.Result(); err != nil {
			return rxResult{}, err
		}
		return rxResult{OK: true, Bytes: size, Seconds: time.Since(start).Seconds()}, nil
	})
}

// labRawRx counts a UDP multicast blast until it has been idle for a
// second.
func labRawRx(args []string, stdout io.Writer) int {
	return report(stdout, func() (rxResult, error) {
		g, err := helperFlags("lab-rawrx", args, nil)
		if err != nil {
			return rxResult{}, err
		}
		ifi, err := net.InterfaceByName(lab.Iface)
		if err != nil {
			return rxResult{}, err
		}
		c, err := net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(g))
		if err != nil {
			return rxResult{}, err
		}
		defer c.Close()
		_ = c.SetReadBuffer(4 << 20)
		var res rxResult
		buf := make([]byte, 2048)
		var first, last time.Time
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			wait := 5 * time.Second
			if !first.IsZero() {
				wait = time.Second
			}
			_ = c.SetReadDeadline(time.Now().Add(wait))
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			if first.IsZero() {
				first = time.Now()
			}
			last = time.Now()
			res.Bytes += int64(n - 32) // count payload as Shoal's goodput does
		}
		res.OK, res.Seconds = res.Bytes > 0, last.Sub(first).Seconds()
		return res, nil
	})
}

// openLab builds a lab of n hosts and returns with it the function that
// tears it down; the lab is also torn down on Ctrl-C or SIGTERM, which
// would otherwise leave its namespaces behind. done is safe to call when
// err is not nil.
func openLab(n int) (l *lab.Lab, done func(), err error) {
	l, err = lab.Build(n)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sig; ok {
			if l != nil {
				l.Close()
			}
			os.Exit(1)
		}
	}()
	return l, func() {
		signal.Stop(sig)
		close(sig)
		if l != nil {
			l.Close()
		}
	}, err
}
