package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows how far a transfer is: bars with rate and ETA when w is a
// terminal, a plain line every few seconds otherwise (logs stay readable).
type progress struct {
	w     io.Writer
	p     *mpb.Progress
	bars  []*mpb.Bar
	names []string
	total []int64
	mu    sync.Mutex
	cur   []int64
	last  time.Time
}

func isTerminal(w io.Writer) bool {
	if l, ok := w.(*lockedWriter); ok {
		w = l.w
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// newProgress starts one bar of total bytes.
func newProgress(w io.Writer, name string, total int64) *progress {
	return newMultiProgress(w, []string{name}, []int64{total})
}

// newMultiProgress starts one bar per name.
func newMultiProgress(w io.Writer, names []string, totals []int64) *progress {
	pr := &progress{w: w, names: names, total: totals, cur: make([]int64, len(names))}
	if !isTerminal(w) {
		return pr
	}
	pr.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	for i, n := range names {
		pr.bars = append(pr.bars, pr.p.AddBar(max(totals[i], 1),
			mpb.PrependDecorators(decor.Name(n, decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
			mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), "% .1f"), decor.Name(" ETA "), decor.AverageETA(decor.ET_STYLE_GO))))
	}
	return pr
}

// set records that bar 0 has done n bytes.
func (pr *progress) set(n int64) { pr.setBar(0, n) }

func (pr *progress) setBar(i int, n int64) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	n = min(n, pr.total[i])
	if n <= pr.cur[i] {
		return
	}
	d := n - pr.cur[i]
	pr.cur[i] = n
	if pr.p != nil {
		// Blocks complete in bursts, so a moving average of increments
		// would swing; the average since the start is what a user wants.
		pr.bars[i].IncrInt64(d)
		return
	}
	if time.Since(pr.last) > 5*time.Second {
		pr.last = time.Now()
		fmt.Fprintf(pr.w, "filecast: %s: %d of %d bytes\n", pr.names[i], n, pr.total[i])
	}
}

// finish completes every bar and waits for the display.
func (pr *progress) finish() {
	if pr.p == nil {
		return
	}
	for i, b := range pr.bars {
		b.SetCurrent(max(pr.total[i], 1))
	}
	pr.p.Wait()
}
