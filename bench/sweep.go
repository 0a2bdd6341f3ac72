package main

import (
	"bufio"
	"bytes"
	"encoding/csv"

	"flag"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/sender"
)

// sweepPoint is one run of a sweep and what it measured; a row of
// sweep.csv.
type sweepPoint struct {
	Plot      string  // which plot the run is for: nacks, goodput, lab
	Impl      string  // shoal, uniform (timers), filecast, uftp, libnorm
	Receivers int     //
	Loss      float64 // fraction, on each receiver's link
	Shared    float64 // fraction, on the sender's link
	Burst     float64 // mean burst length; 0: independent losses
	Size      int64   // bytes
	Seed      uint64  //
	Delivered int     // receivers that got everything
	Nacks     float64 // NACKs per lossy block
	Overhead  float64 // repair overhead
	Rounds    float64 // repair rounds per lossy block
	Complete  float64 // seconds (virtual in the simulation) until the last receiver had everything
	Goodput   float64 // Mbit/s: file bits over Complete
	Wall      float64 // seconds of wall time the run took
}

var sweepHeader = []string{"plot", "impl", "receivers", "loss", "shared_loss", "burst", "size", "seed",
	"delivered", "nacks_per_lossy_block", "repair_overhead", "repair_rounds_per_lossy_block", "complete_s", "goodput_mbps", "wall_s"}

func (p sweepPoint) record() []string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }
	return []string{p.Plot, p.Impl, strconv.Itoa(p.Receivers), f(p.Loss), f(p.Shared), f(p.Burst),
		strconv.FormatInt(p.Size, 10), strconv.FormatUint(p.Seed, 10), strconv.Itoa(p.Delivered),
		f(p.Nacks), f(p.Overhead), f(p.Rounds), f(p.Complete), f(p.Goodput), f(p.Wall)}
}

// sweepGrid is the set of runs a sweep makes.
type sweepGrid struct {
	receivers []int     // receiver counts for the NACK and completion-time plots
	uniformTo int       // largest receiver count also run with uniform timers
	rxSize    int64     // file size of those runs
	losses    []float64 // loss rates of the goodput plot
	lossRx    int       // receivers of the goodput runs
	lossSize  int64     // file size of the goodput runs
	burst     float64   // mean burst length of the burst-loss goodput runs
	labLosses []float64 // loss rates of the lab plot
	labSize   int64
	labRounds int
}

func fullGrid() sweepGrid {
	return sweepGrid{
		receivers: []int{10, 30, 100, 300, 1000, 3000, 10000}, uniformTo: 1000, rxSize: 4 << 20,
		losses: []float64{0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3}, lossRx: 100, lossSize: 4 << 20, burst: 4,
		labLosses: []float64{0, 0.01, 0.02, 0.05, 0.1}, labSize: 64 << 20, labRounds: 3,
	}
}

func quickGrid() sweepGrid {
	return sweepGrid{
		receivers: []int{10, 30, 100, 300, 1000}, uniformTo: 300, rxSize: 1 << 20,
		losses: []float64{0, 0.02, 0.05, 0.1, 0.2, 0.3}, lossRx: 20, lossSize: 1 << 20, burst: 4,
		labLosses: []float64{0, 0.02, 0.05, 0.1}, labSize: 16 << 20, labRounds: 1,
	}
}

// runSweep runs a grid of simulated (and with -lab, lab) transfers, writes
// every run to DIR/sweep.csv and draws the plots into DIR as PNG and SVG;
// with -lab, bench filecast's line for each loss rate goes to DIR/filecast.txt.
func runSweep(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory for sweep.csv and the plots (created if missing)")
	quick := fs.Bool("quick", false, "a reduced grid (up to 1,000 receivers, 1 MiB files), a few minutes")
	withLab := fs.Bool("lab", false, "also run bench filecast at several loss rates (root; needs the lab)")
	seed := fs.Uint64("seed", 1, "random seed of every simulated run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "bench sweep: need -out DIR (and no other arguments)")
		return 2
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "bench sweep: %v\n", err)
		return 1
	}
	cmdline := "bench sweep" + sweepFlags(*quick, *withLab, *seed)
	g := fullGrid()
	if *quick {
		g = quickGrid()
	}
	jobs := simJobs(g, *seed)
	total := len(jobs)
	if *withLab {
		total += len(g.labLosses)
	}
	if *withLab {
		// filecast.txt gathers this sweep's bench filecast lines only.
		if err := os.Remove(filepath.Join(*out, "filecast.txt")); err != nil && !os.IsNotExist(err) {
			fmt.Fprintf(stderr, "bench sweep: %v\n", err)
			return 1
		}
	}
	bar := newProgress(stderr, total)
	var points []sweepPoint
	for _, j := range jobs {
		bar.start(j.label())
		p, err := j.run()
		if err != nil {
			bar.done()
			fmt.Fprintf(stderr, "bench sweep: %s: %v\n", j.label(), err)
			return 1
		}
		points = append(points, p)
		bar.finish(fmt.Sprintf("%s: %d/%d delivered, %.2f NACKs/lossy block, %.1f Mbit/s", j.label(), p.Delivered, p.Receivers, p.Nacks, p.Goodput))
	}
	if *withLab {
		for _, loss := range g.labLosses {
			label := "lab filecast/uftp/libnorm loss=" + pctName(loss)
			bar.start(label)
			ps, err := labPoints(g, loss, filepath.Join(*out, "filecast.txt"))
			if err != nil {
				bar.done()
				fmt.Fprintf(stderr, "bench sweep: %s: %v\n", label, err)
				return 1
			}
			points = append(points, ps...)
			bar.finish(label)
		}
	}
	bar.done()
	if err := writeSweepCSV(filepath.Join(*out, "sweep.csv"), points); err != nil {
		fmt.Fprintf(stderr, "bench sweep: %v\n", err)
		return 1
	}
	files, err := drawSweep(*out, cmdline, g, points, *withLab)
	if err != nil {
		fmt.Fprintf(stderr, "bench sweep: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "sweep: runs=%d csv=%s plots=%s\n", len(points), filepath.Join(*out, "sweep.csv"), strings.Join(files, ","))
	return 0
}

func sweepFlags(quick, lab bool, seed uint64) string {
	s := ""
	if quick {
		s += " -quick"
	}
	if lab {
		s += " -lab"
	}
	if seed != 1 {
		s += fmt.Sprintf(" -seed %d", seed)
	}
	return s + " -out DIR"
}

// simJob is one simulated run of a sweep.
type simJob struct {
	plot    string
	uniform bool
	sc      simrun.Scenario
	burst   float64
}

func (j simJob) label() string {
	s := fmt.Sprintf("sim %s receivers=%d loss=%s", j.plot, j.sc.Receivers, pctName(j.sc.Loss))
	if j.burst > 0 {
		s += fmt.Sprintf(" burst=%g", j.burst)
	}
	if j.uniform {
		s += " uniform timers"
	}
	return s
}

// sweepScenario is bench sim's default scenario with n receivers.
func sweepScenario(seed uint64, n int, size int64, loss, shared float64) simrun.Scenario {
	return simrun.Scenario{
		Seed: seed, Receivers: n, Loss: loss, Shared: shared, Delay: 5 * time.Millisecond, Limit: 30 * time.Minute,
		Objects: []simrun.Object{{Size: size, File: true, Info: []byte("bench.bin")}},
		Sender:  sender.Config{Rate: 100e6, Parity: 16, BlockLen: 64, SegmentSize: 1400, GroupSize: float64(n)},
	}
}

func simJobs(g sweepGrid, seed uint64) []simJob {
	var jobs []simJob
	for _, n := range g.receivers {
		for _, uniform := range []bool{false, true} {
			if uniform && n > g.uniformTo {
				continue
			}
			sc := sweepScenario(seed, n, g.rxSize, 0.01, 0.005)
			sc.UniformTimers = uniform
			jobs = append(jobs, simJob{plot: "nacks", uniform: uniform, sc: sc})
		}
	}
	for _, burst := range []float64{0, g.burst} {
		for _, loss := range g.losses {
			sc := sweepScenario(seed, g.lossRx, g.lossSize, loss, 0)
			// A session already running knows its GRTT. A new one starts
			// from a 500 ms guess and takes over a second of repair cycles
			// to come down from it, which would hide what loss costs.
			sc.Sender.GRTT = 4 * sc.Delay
			if burst > 0 && loss > 0 {
				ge := simnet.Bursty(loss, burst)
				sc.Burst = &ge
			}
			jobs = append(jobs, simJob{plot: "goodput", sc: sc, burst: burst})
		}
	}
	return jobs
}

func (j simJob) run() (sweepPoint, error) {
	start := time.Now()
	res, err := simrun.Run(j.sc)
	if err != nil {
		return sweepPoint{}, err
	}
	p := sweepPoint{Plot: j.plot, Impl: "shoal", Receivers: j.sc.Receivers, Loss: j.sc.Loss, Shared: j.sc.Shared,
		Burst: j.burst, Size: j.sc.Objects[0].Size, Seed: j.sc.Seed, Delivered: res.Delivered,
		Complete: res.Virtual.Seconds(), Wall: time.Since(start).Seconds()}
	if j.uniform {
		p.Impl = "uniform"
	}
	if res.LossyBlocks > 0 {
		p.Nacks = float64(res.NacksSent) / float64(res.LossyBlocks)
		p.Overhead = float64(res.RepairSymbols) / float64(res.MaxMissedSum)
		p.Rounds = float64(res.RepairRounds) / float64(res.LossyBlocks)
	}
	if res.Delivered == j.sc.Receivers && res.Virtual > 0 {
		p.Goodput = float64(p.Size) * 8 / res.Virtual.Seconds() / 1e6
	}
	return p, nil
}

// labPoints runs bench filecast at one loss rate and returns a point per
// implementation that ran. It appends bench filecast's line to lines, so
// that the figures behind the plot can be quoted as printed.
func labPoints(g sweepGrid, loss float64, lines string) ([]sweepPoint, error) {
	var out bytes.Buffer
	args := []string{"-size", strconv.FormatInt(g.labSize, 10), "-rounds", strconv.Itoa(g.labRounds),
		"-loss", strconv.FormatFloat(loss, 'g', -1, 64)}
	var log bytes.Buffer
	if code := runFilecast(args, &out, &log); code != 0 {
		return nil, fmt.Errorf("bench filecast %s failed:\n%s", strings.Join(args, " "), log.String())
	}
	f, err := os.OpenFile(lines, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	_, werr := f.Write(out.Bytes())
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return nil, werr
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(out.String()) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	receivers, _ := strconv.Atoi(fields["receivers"])
	var ps []sweepPoint
	for _, im := range []struct{ name, key string }{{"filecast", "goodput_mbps"}, {"uftp", "uftp_mbps"}, {"libnorm", "libnorm_mbps"}} {
		v, err := strconv.ParseFloat(fields[im.key], 64)
		if err != nil {
			continue // "-": not installed
		}
		ps = append(ps, sweepPoint{Plot: "lab", Impl: im.name, Receivers: receivers, Loss: loss, Size: g.labSize,
			Goodput: v, Delivered: receivers})
	}
	return ps, nil
}

func writeSweepCSV(path string, points []sweepPoint) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(bufio.NewWriter(f))
	_ = w.Write(sweepHeader)
	for _, p := range points {
		_ = w.Write(p.record())
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// expectedNacks is the expected number of NACKs for one loss event that n
// receivers all detect at once, when each draws its back-off from [0, T]
// and a NACK suppresses those not yet sent once it has travelled a fraction
// d of T: n × P(a receiver's timer ends before the earliest other one's plus
// d). Exponential timers follow nack.BackoffDelay with group size n;
// uniform ones are uniform on [0, T].
func expectedNacks(n int, d float64, uniform bool) float64 {
	lambda := math.Log(float64(n)) + 1
	cdf := func(t float64) float64 { return math.Expm1(lambda*t) / math.Expm1(lambda) }
	pdf := func(t float64) float64 { return lambda * math.Exp(lambda*t) / math.Expm1(lambda) }
	if uniform {
		cdf = func(t float64) float64 { return t }
		pdf = func(float64) float64 { return 1 }
	}
	const steps = 20000
	sum := 0.0
	for i := range steps {
		t := (float64(i) + 0.5) / steps
		surv := 1.0
		if u := t - d; u > 0 {
			surv = math.Pow(1-cdf(u), float64(n-1))
		}
		sum += pdf(t) * surv / steps
	}
	return float64(n) * sum
}

// drawSweep draws the plots of a sweep into dir, each as PNG and SVG, and
// returns the files' base names.
func drawSweep(dir, cmdline string, g sweepGrid, points []sweepPoint, lab bool) ([]string, error) {
	var files []string
	save := func(p *plot.Plot, name string) error {
		for _, ext := range []string{".png", ".svg"} {
			if err := p.Save(16*vg.Centimeter, 11*vg.Centimeter, filepath.Join(dir, name+ext)); err != nil {
				return err
			}
		}
		files = append(files, name)
		return nil
	}
	sel := func(plotName, impl string, burst bool) []sweepPoint {
		var r []sweepPoint
		for _, p := range points {
			if p.Plot == plotName && (impl == "" || p.Impl == impl) && (p.Burst > 0) == burst {
				r = append(r, p)
			}
		}
		return r
	}
	xy := func(ps []sweepPoint, x, y func(sweepPoint) float64) plotter.XYs {
		var r plotter.XYs
		for _, p := range ps {
			if yv := y(p); !math.IsNaN(yv) {
				r = append(r, plotter.XY{X: x(p), Y: yv})
			}
		}
		return r
	}
	rx := func(p sweepPoint) float64 { return float64(p.Receivers) }
	lossPct := func(p sweepPoint) float64 { return p.Loss * 100 }

	// 1. NACKs per lossy block against receivers.
	p := newPlot("NACKs per lossy block as the group grows", cmdline,
		"receivers", "NACKs per lossy block (log)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	nonzero := func(f func(sweepPoint) float64) func(sweepPoint) float64 {
		return func(p sweepPoint) float64 {
			if v := f(p); v > 0 {
				return v
			}
			return math.NaN()
		}
	}
	nacks := nonzero(func(p sweepPoint) float64 { return p.Nacks })
	if err := addLines(p, 0, "Shoal (exponential timers), simulated", xy(sel("nacks", "shoal", false), rx, nacks)); err != nil {
		return nil, err
	}
	if err := addLines(p, 1, "uniform timers, simulated", xy(sel("nacks", "uniform", false), rx, nacks)); err != nil {
		return nil, err
	}
	// Theory with the simulation's delays: back-off window 4 × GRTT
	// (20 ms), a NACK reaching other receivers after 10 ms: d = 1/8.
	var theoryExp, theoryUni plotter.XYs
	for n := 10.0; n <= float64(g.receivers[len(g.receivers)-1])*1.001; n *= math.Pow(10, 0.125) {
		theoryExp = append(theoryExp, plotter.XY{X: n, Y: expectedNacks(int(n), 1.0/8, false)})
		theoryUni = append(theoryUni, plotter.XY{X: n, Y: expectedNacks(int(n), 1.0/8, true)})
	}
	if err := addTheory(p, 0, "theory, exponential timers, one loss event", theoryExp); err != nil {
		return nil, err
	}
	if err := addTheory(p, 1, "theory, uniform timers, one loss event", theoryUni); err != nil {
		return nil, err
	}
	if err := save(p, "nacks_vs_receivers"); err != nil {
		return nil, err
	}

	// 2. Goodput against loss, random and burst.
	p = newPlot("Goodput as loss grows (sender's GRTT known from the start)", cmdline, "loss on each receiver's link (%)", "goodput (Mbit/s)")
	good := func(p sweepPoint) float64 { return p.Goodput }
	if err := addLines(p, 0, fmt.Sprintf("independent losses, %d receivers", g.lossRx), xy(sel("goodput", "", false), lossPct, good)); err != nil {
		return nil, err
	}
	if err := addLines(p, 1, fmt.Sprintf("bursts of mean %g packets, %d receivers", g.burst, g.lossRx), xy(sel("goodput", "", true), lossPct, good)); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	if err := save(p, "goodput_vs_loss"); err != nil {
		return nil, err
	}

	// 3. Time to complete against receivers.
	p = newPlot("Time until every receiver has the file", cmdline, "receivers", "time to complete (s, simulated)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	done := func(p sweepPoint) float64 { return p.Complete }
	if err := addLines(p, 0, fmt.Sprintf("Shoal, %s file, 1%% + 0.5%% shared loss", sizeName(g.rxSize)), xy(sel("nacks", "shoal", false), rx, done)); err != nil {
		return nil, err
	}
	p.Y.Min = 0
	if err := save(p, "time_vs_receivers"); err != nil {
		return nil, err
	}

	// 4. The lab: filecast, UFTP and libnorm side by side.
	if lab {
		p = newPlot("Goodput in the lab (network namespaces)", cmdline, "loss on each receiver's link (%)", "goodput (Mbit/s)")
		for i, im := range []string{"filecast", "uftp", "libnorm"} {
			if err := addLines(p, i, im, xy(sel("lab", im, false), lossPct, good)); err != nil {
				return nil, err
			}
		}
		p.Y.Min = 0
		if err := save(p, "lab_goodput_vs_loss"); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func newPlot(title, cmdline, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title + "\n" + cmdline
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(4)
	p.Add(plotter.NewGrid())
	return p
}

var sweepColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// addLines adds a measured series as a line with point markers.
func addLines(p *plot.Plot, i int, name string, pts plotter.XYs) error {
	if len(pts) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	c := sweepColors[i%len(sweepColors)]
	l.Color, s.Color = c, c
	s.Shape = draw.CircleGlyph{}
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// addTheory adds a computed series as a dashed line.
func addTheory(p *plot.Plot, i int, name string, pts plotter.XYs) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = sweepColors[i%len(sweepColors)]
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// progress shows a sweep's progress: a bar redrawn in place on a terminal,
// a line per finished run otherwise.
type progress struct {
	w      io.Writer
	tty    bool
	total  int
	n      int
	began  time.Time
	label  string
	active bool
}

func newProgress(w io.Writer, total int) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progress{w: w, tty: tty, total: total, began: time.Now()}
}

func (p *progress) start(label string) {
	p.label = label
	if p.tty {
		p.draw()
	}
}

func (p *progress) draw() {
	const width = 30
	fill := width * p.n / max(p.total, 1)
	eta := ""
	if p.n > 0 {
		left := time.Duration(float64(time.Since(p.began)) / float64(p.n) * float64(p.total-p.n))
		eta = " ETA " + left.Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[K[%s%s] %d/%d%s  %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.n, p.total, eta, p.label)
	p.active = true
}

func (p *progress) finish(summary string) {
	p.n++
	if p.tty {
		p.draw()
		return
	}
	fmt.Fprintf(p.w, "bench sweep: %d/%d %s (%.0f s so far)\n", p.n, p.total, summary, time.Since(p.began).Seconds())
}

func (p *progress) done() {
	if p.tty && p.active {
		fmt.Fprintln(p.w)
		p.active = false
	}
}
