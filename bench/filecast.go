package main

import (
	"crypto/rand"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
)

// The settings every implementation shares: socket buffers of 4 MiB (the
// lab's rmem_max) and 1400-byte payloads.
const (
	castSockBuf = 4 << 20
	castSegment = 1400
)

// castEnv is what every run of bench filecast shares.
type castEnv struct {
	lab     *lab.Lab
	work    string
	src     string // the file every implementation sends
	sum     [32]byte
	size    int64
	rate    int64 // nominal bits/s without cc
	cc      bool
	timeout time.Duration
	port    int
	stderr  io.Writer

	filecast, normpeer string // built programs
}

// nextPort gives each run a port (and with it a session) of its own, so
// that a straggler from one run cannot feed the next.
func (e *castEnv) nextPort() int {
	e.port++
	return e.port
}

// castRun is one transfer by one implementation.
type castRun struct {
	took      time.Duration // the sender's start until the last receiver had the file
	exitAfter time.Duration // the sender's exit after that moment (filecast only)
	rxCPU     float64       // the receivers' CPU seconds, summed
	err       error
}

// castImpl is one implementation under test.
type castImpl struct {
	name string
	skip string // why it does not run, or ""
	run  func(*castEnv) castRun
	runs []castRun
}

// runFilecast compares the filecast tool with UFTP and with the reference
// libnorm on the same lab, file and loss, in rotating order, and reports
// medians.
func runFilecast(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench filecast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		size      int64 = 64 << 20
		loss      float64
		rate      int64 = 1e9
		receivers       = fs.Int("receivers", 2, "number of receiver hosts")
		cc              = fs.Bool("cc", false, "congestion control: filecast send --cc, uftp -C tfmcc, libnorm's NORM-CC, each from its own starting rate")
		rounds          = fs.Int("rounds", 3, "rounds; each runs every implementation once, in rotating order; figures are medians over rounds")
		timeout         = fs.Duration("timeout", 2*time.Minute, "bound on each run; a run that takes longer is killed and counts as failed")
	)
	fs.Var(sizeFlag{&size}, "size", "file size, e.g. 64MiB")
	fs.Var(pctFlag{&loss}, "loss", "random loss of every UDP datagram a receiver host takes in (nftables), e.g. 1%")
	fs.Var(bitsFlag{&rate}, "rate", "without --cc: the fixed send rate of every implementation, e.g. 1Gbit")
	burst := fs.Float64("burst", 0, "with -loss: lose datagrams in bursts of this mean length (Gilbert-Elliott), not independently")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *receivers < 1 || *receivers > 200 || size < 1 || *rounds < 1 || *timeout <= 0 {
		fmt.Fprintln(stderr, "bench filecast: need 1 to 200 receivers, a size, at least one round and a timeout")
		return 2
	}
	if why := lab.Available(); why != "" {
		fmt.Fprintf(stderr, "bench filecast: %s\n", why)
		return 1
	}
	work, err := os.MkdirTemp("", "shoal-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "bench filecast: %v\n", err)
		return 1
	}
	var (
		labMu sync.Mutex // held while the lab is built or torn down
		l     *lab.Lab
	)
	stop := onInterrupt(func() {
		// The peers first: they hold the lab's namespaces.
		live.killAll()
		labMu.Lock()
		if l != nil {
			l.Close()
		}
		os.RemoveAll(work)
	})
	defer stop()
	defer os.RemoveAll(work)
	e := &castEnv{work: work, size: size, rate: rate, cc: *cc, timeout: *timeout, port: 7400, stderr: stderr}
	// filecast is a separate program: build it once, as a user would.
	e.filecast = filepath.Join(work, "filecast")
	gobuild := exec.Command("go", "build", "-o", e.filecast, "./examples/filecast")
	setProcAttr(gobuild)
	if out, err := gobuild.CombinedOutput(); err != nil {
		fmt.Fprintf(stderr, "bench filecast: building filecast (run from the repository root): %v\n%s", err, out)
		return 1
	}
	impls := []*castImpl{{name: "filecast", run: filecastRun}, {name: "uftp", run: uftpRun}, {name: "libnorm", run: libnormRun}}
	if _, err := exec.LookPath("uftp"); err != nil {
		impls[1].skip = "uftp is not installed (apt-get install uftp)"
	} else if _, err := exec.LookPath("uftpd"); err != nil {
		impls[1].skip = "uftpd is not installed (apt-get install uftp)"
	}
	if e.normpeer, err = buildNormpeer(work); err != nil {
		impls[2].skip = err.Error()
	}
	for _, im := range impls {
		if im.skip != "" {
			fmt.Fprintf(stderr, "bench filecast: skipping %s: %s\n", im.name, im.skip)
		}
	}
	e.src = filepath.Join(work, "bench.bin")
	if e.sum, err = randomFile(e.src, size); err != nil {
		fmt.Fprintf(stderr, "bench filecast: %v\n", err)
		return 1
	}
	labMu.Lock()
	l, err = lab.Build(*receivers + 1)
	labMu.Unlock()
	defer func() {
		labMu.Lock()
		defer labMu.Unlock()
		if l != nil {
			l.Close()
		}
	}()
	if err != nil {
		fmt.Fprintf(stderr, "bench filecast: %v\n", err)
		return 1
	}
	e.lab = l
	// SetLoss also cuts GSO batches on every link once there is loss, so
	// that the loss is per datagram.
	for _, h := range l.Hosts[1:] {
		if err := h.SetBurstLoss(loss*100, *burst); err != nil {
			fmt.Fprintf(stderr, "bench filecast: %v\n", err)
			return 1
		}
	}
	mode := fmt.Sprintf("fixed rate %s", bitsName(rate))
	if *cc {
		mode = "congestion control"
	}
	fmt.Fprintf(stderr, "bench filecast: %d receivers, %s, %s loss, %s, %d rounds%s\n", *receivers, sizeName(size), pctName(loss), mode, *rounds, loadAvg())
	gib := float64(*receivers) * float64(size) / (1 << 30) // received in one run, by all receivers
	for r := range *rounds {
		// Rotate the order, so that no implementation always runs first
		// (on a cold cache) or right after another's load.
		for k := range impls {
			im := impls[(r+k)%len(impls)]
			if im.skip != "" {
				continue
			}
			res := im.run(e)
			im.runs = append(im.runs, res)
			if res.err != nil {
				fmt.Fprintf(stderr, "bench filecast: round %d %s: FAILED: %v\n", r+1, im.name, res.err)
				continue
			}
			fmt.Fprintf(stderr, "bench filecast: round %d %s: %.2f s, %.0f Mbit/s, receivers' CPU %.2f s/GiB",
				r+1, im.name, res.took.Seconds(), mbps(size, res.took), res.rxCPU/gib)
			if im.name == "filecast" {
				fmt.Fprintf(stderr, ", sender exited %+.2f s after", res.exitAfter.Seconds())
			}
			fmt.Fprintln(stderr)
		}
	}
	if la := loadAvg(); la != "" {
		fmt.Fprintf(stderr, "bench filecast: done%s\n", la)
	}
	line := castLine{Receivers: *receivers, Size: size, Loss: loss, Burst: *burst, CC: *cc}
	for _, im := range impls {
		g, cpu, exit := math.NaN(), math.NaN(), math.NaN()
		if im.skip == "" {
			g, cpu, exit = summarize(im.runs, size, gib)
			fmt.Fprintf(stderr, "bench filecast: %s: median goodput %.0f Mbit/s over %d runs (%d failed), receivers' CPU %s s/GiB\n",
				im.name, g, len(im.runs), failures(im.runs), fig(cpu, 2))
		}
		switch im.name {
		case "filecast":
			line.Goodput, line.ExitAfter, line.RxCPU = g, exit, cpu
		case "uftp":
			line.UFTP, line.UFTPCPU = g, cpu
		case "libnorm":
			line.Libnorm = g
		}
	}
	fmt.Fprintln(stdout, line)
	if !(line.Goodput > 0) {
		return 1
	}
	return 0
}

// onInterrupt runs cleanup and exits if the program is interrupted or
// terminated before stop is called: a lab's namespaces and the programs
// in them would otherwise outlive it.
func onInterrupt(cleanup func()) (stop func()) {
	sig := make(chan os.Signal, 1)
	quit := make(chan struct{})
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sig:
			cleanup()
			os.Exit(1)
		case <-quit:
		}
	}()
	return func() {
		signal.Stop(sig)
		close(quit)
	}
}

// loadAvg describes the machine's load, which the figures depend on when
// other work shares its cores; "" where it is not known.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return ""
	}
	return fmt.Sprintf("; load average %s %s %s on %d CPUs", f[0], f[1], f[2], runtime.NumCPU())
}

// summarize returns the median goodput in Mbit/s (a failed run counts as
// taking forever, so the median fails once half the runs do), and the
// medians over completed runs of the receivers' CPU seconds per GiB and
// of the sender's exit after the last completion (NaN without any).
func summarize(runs []castRun, size int64, gib float64) (goodput, cpu, exitAfter float64) {
	var took, cpus, exits []float64
	for _, r := range runs {
		if r.err != nil {
			took = append(took, math.Inf(1))
			continue
		}
		took = append(took, r.took.Seconds())
		cpus = append(cpus, r.rxCPU/gib)
		exits = append(exits, r.exitAfter.Seconds())
	}
	goodput = 0
	if t := median(took); t > 0 && !math.IsInf(t, 1) {
		goodput = float64(size) * 8 / t / 1e6
	}
	return goodput, median(cpus), median(exits)
}

func failures(runs []castRun) int {
	n := 0
	for _, r := range runs {
		if r.err != nil {
			n++
		}
	}
	return n
}

// median of xs (NaN for none); with an even count, the mean of the middle
// two.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func mbps(size int64, d time.Duration) float64 { return float64(size) * 8 / d.Seconds() / 1e6 }

// castLine is the one line bench filecast ends with. NaN marks a figure
// not measured (a peer skipped): it prints as "-".
type castLine struct {
	Receivers int
	Size      int64
	Loss      float64
	Burst     float64 // mean burst length; 1 or less: independent losses
	CC        bool
	Goodput   float64 // filecast, Mbit/s (0: the median run failed)
	UFTP      float64 // Mbit/s
	Libnorm   float64 // Mbit/s
	ExitAfter float64 // seconds
	RxCPU     float64 // filecast receivers' CPU s/GiB
	UFTPCPU   float64 // uftpd's CPU s/GiB
}

func (c castLine) String() string {
	best := math.NaN()
	for _, p := range []float64{c.UFTP, c.Libnorm} {
		if !math.IsNaN(p) && (math.IsNaN(best) || p > best) {
			best = p
		}
	}
	ratio := math.NaN()
	if best > 0 {
		ratio = c.Goodput / best
	}
	cc := ""
	if c.Burst > 1 {
		cc = fmt.Sprintf(" burst=%g", c.Burst)
	}
	if c.CC {
		cc += " cc=on"
	}
	return fmt.Sprintf("filecast: receivers=%d size=%s loss=%s%s goodput_mbps=%s uftp_mbps=%s libnorm_mbps=%s ratio=%s sender_exit_after_s=%s rx_cpu_s_per_gib=%s uftp_rx_cpu_s_per_gib=%s",
		c.Receivers, sizeName(c.Size), pctName(c.Loss), cc, fig(c.Goodput, 0), fig(c.UFTP, 0), fig(c.Libnorm, 0),
		fig(ratio, 2), fig(c.ExitAfter, 2), fig(c.RxCPU, 2), fig(c.UFTPCPU, 2))
}

// fig formats a figure with prec decimals, or "-" for NaN.
func fig(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func bitsName(b int64) string {
	switch {
	case b >= 1e9 && b%1e9 == 0:
		return fmt.Sprintf("%d Gbit/s", b/1e9)
	case b >= 1e6 && b%1e6 == 0:
		return fmt.Sprintf("%d Mbit/s", b/1e6)
	}
	return fmt.Sprintf("%d bit/s", b)
}

func randomFile(path string, size int64) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Create(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

func fileSum(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// verify checks that path holds the file sent, after the run's timing.
func (e *castEnv) verify(path string) error {
	got, err := fileSum(path)
	if err != nil {
		return err
	}
	if got != e.sum {
		return fmt.Errorf("%s: SHA-256 differs from the file sent", path)
	}
	return nil
}

// receiverDirs makes one empty directory per receiver for a run.
func (e *castEnv) receiverDirs(impl string, port int) ([]string, error) {
	var dirs []string
	for i := range e.lab.Hosts[1:] {
		d := filepath.Join(e.work, fmt.Sprintf("%s-%d-rx%d", impl, port, i))
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// castSettle is how long receivers get to start and join the group
// before the sender starts; the same for every implementation.
const castSettle = 500 * time.Millisecond

// stopAll kills whatever still runs and returns the CPU seconds of ps.
func stopAll(ps []*proc) float64 {
	cpu := 0.0
	for _, p := range ps {
		p.stop()
		cpu += p.cpu()
	}
	return cpu
}

func startErr(err error) castRun { return castRun{err: err} }
