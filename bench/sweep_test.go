package main

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestExpectedNacks: the suppression theory gives the figures it is known
// for at 10,000 receivers: about 4.5 NACKs per loss event with exponential
// timers when a NACK reaches the others in an eighth of the window, 17 in a
// quarter, and about 2,500 with uniform timers.
func TestExpectedNacks(t *testing.T) {
	for _, c := range []struct {
		d       float64
		uniform bool
		want    float64
	}{{1.0 / 8, false, 4.53}, {1.0 / 4, false, 17.2}, {1.0 / 4, true, 2501}} {
		if got := expectedNacks(10000, c.d, c.uniform); math.Abs(got-c.want) > 0.01*c.want {
			t.Errorf("expectedNacks(10000, %v, uniform %v) = %.2f, want %.2f", c.d, c.uniform, got, c.want)
		}
	}
	if one := expectedNacks(1, 0.125, false); math.Abs(one-1) > 1e-3 {
		t.Errorf("one receiver sends %.3f NACKs", one)
	}
}

// TestDrawSweep: a sweep's points become a CSV row each and the plots, as
// PNG and SVG files with something in them.
func TestDrawSweep(t *testing.T) {
	dir := t.TempDir()
	g := quickGrid()
	var pts []sweepPoint
	for _, n := range g.receivers {
		pts = append(pts, sweepPoint{Plot: "nacks", Impl: "shoal", Receivers: n, Nacks: 2 + math.Log(float64(n)), Complete: 0.2})
		pts = append(pts, sweepPoint{Plot: "nacks", Impl: "uniform", Receivers: n, Nacks: float64(n) / 8})
	}
	for _, l := range g.losses {
		pts = append(pts, sweepPoint{Plot: "goodput", Loss: l, Goodput: 700 * (1 - l)})
		pts = append(pts, sweepPoint{Plot: "goodput", Loss: l, Burst: 4, Goodput: 650 * (1 - l)})
		pts = append(pts, sweepPoint{Plot: "lab", Impl: "uftp", Loss: l, Goodput: 500 * (1 - l)})
	}
	files, err := drawSweep(dir, "bench sweep -quick -out DIR", g, pts, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 {
		t.Fatalf("drew %v, want 4 plots", files)
	}
	for _, f := range files {
		for _, ext := range []string{".png", ".svg"} {
			fi, err := os.Stat(filepath.Join(dir, f+ext))
			if err != nil || fi.Size() < 1000 {
				t.Errorf("%s%s: %v, %d bytes", f, ext, err, fi.Size())
			}
		}
	}
	path := filepath.Join(dir, "sweep.csv")
	if err := writeSweepCSV(path, pts); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != len(pts)+1 || len(rows[0]) != len(sweepHeader) {
		t.Fatalf("csv: %d rows (want %d), err %v", len(rows), len(pts)+1, err)
	}
}
