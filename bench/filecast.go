package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
)

// runFilecast compares the filecast tool with UFTP (when the Debian uftp
// package is installed) on the same lab, file and loss.
func runFilecast(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench filecast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		size      int64 = 64 << 20
		loss      float64
		receivers = fs.Int("receivers", 2, "number of receiver hosts")
	)
	fs.Var(sizeFlag{&size}, "size", "file size, e.g. 64MiB")
	fs.Var(pctFlag{&loss}, "loss", "random loss on every receiver's link (nftables), e.g. 1%")
	if err := fs.Parse(args); err != nil {
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
	defer os.RemoveAll(work)
	// filecast is a separate program: build it once, as a user would.
	bin := filepath.Join(work, "filecast")
	if out, err := exec.Command("go", "build", "-o", bin, "./examples/filecast").CombinedOutput(); err != nil {
		fmt.Fprintf(stderr, "bench filecast: building filecast (run from the repository root): %v\n%s", err, out)
		return 1
	}
	src := filepath.Join(work, "bench.bin")
	sum, err := randomFile(src, size)
	if err != nil {
		fmt.Fprintf(stderr, "bench filecast: %v\n", err)
		return 1
	}
	l, done, err := openLab(*receivers + 1)
	defer done()
	if err != nil {
		fmt.Fprintf(stderr, "bench filecast: %v\n", err)
		return 1
	}
	pct := int(loss*100 + 0.5)
	for _, h := range l.Hosts[1:] {
		if err := h.SetLoss(pct); err != nil {
			fmt.Fprintf(stderr, "bench filecast: %v\n", err)
			return 1
		}
	}
	best := 0.0
	for i, mbit := range []int{300, 500, 700} {
		g, err := filecastRun(l, bin, src, sum, size, mbit, autoParity(loss, 16), 7400+i, work, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench filecast: filecast at %d Mbit/s: %v\n", mbit, err)
			continue
		}
		fmt.Fprintf(stderr, "bench filecast: filecast at %d Mbit/s: goodput %.0f Mbit/s\n", mbit, g)
		best = max(best, g)
	}
	if best == 0 {
		fmt.Fprintln(stderr, "bench filecast: no filecast run completed")
		return 1
	}
	uftp := "-"
	ratio := "-"
	if _, err := exec.LookPath("uftp"); err == nil {
		ub := 0.0
		for _, kbps := range []int{300_000, 500_000, 700_000, -1} {
			g, err := uftpRun(l, src, sum, size, kbps, work, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "bench filecast: uftp -R %d: %v\n", kbps, err)
				continue
			}
			fmt.Fprintf(stderr, "bench filecast: uftp -R %d: goodput %.0f Mbit/s\n", kbps, g)
			ub = max(ub, g)
		}
		if ub > 0 {
			uftp, ratio = fmt.Sprintf("%.0f", ub), fmt.Sprintf("%.2f", best/ub)
		}
	} else {
		fmt.Fprintln(stderr, "bench filecast: uftp not installed (apt-get install uftp); no comparison")
	}
	fmt.Fprintf(stdout, "filecast: receivers=%d size=%s loss=%s goodput_mbps=%.0f uftp_mbps=%s ratio=%s\n",
		*receivers, sizeName(size), pctName(loss), best, uftp, ratio)
	return 0
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

// filecastRun sends src with filecast send to filecast recv on every
// receiver host and returns the goodput until the last one holds it.
func filecastRun(l *lab.Lab, bin, src string, sum [32]byte, size int64, mbit, auto, port int, work string, stderr io.Writer) (float64, error) {
	group := fmt.Sprintf("239.255.12.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var rx []*exec.Cmd
	var outs []*bytes.Buffer
	var dirs []string
	for i, h := range l.Hosts[1:] {
		dir := filepath.Join(work, fmt.Sprintf("fc-%d-%d", port, i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return 0, err
		}
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, bin, "recv", "--dir", dir, "--group", group,
			"--iface", lab.Iface, "--count", "1", "--linger", "0", "--json")
		cmd.Stdout, cmd.Stderr = &out, stderr
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		rx, outs, dirs = append(rx, cmd), append(outs, &out), append(dirs, dir)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	tx := exec.CommandContext(ctx, "ip", "netns", "exec", l.Hosts[0].NS, bin, "send", "--group", group, "--iface", lab.Iface,
		"--rate", fmt.Sprintf("%dM", mbit), "--auto-parity", fmt.Sprint(auto), src)
	tx.Stdout, tx.Stderr = io.Discard, stderr
	if err := tx.Start(); err != nil {
		return 0, err
	}
	for i, cmd := range rx {
		if err := cmd.Wait(); err != nil {
			_ = tx.Process.Kill()
			return 0, fmt.Errorf("receiver %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	_ = tx.Process.Kill() // it would linger in its flush; the receivers are done
	_ = tx.Wait()
	for i, out := range outs {
		var r struct {
			OK     bool   `json:"ok"`
			SHA256 string `json:"sha256"`
		}
		if json.Unmarshal(out.Bytes(), &r) != nil || !r.OK || r.SHA256 != fmt.Sprintf("%x", sum) {
			return 0, fmt.Errorf("receiver %d did not verify: %s", i, out.String())
		}
		_ = dirs
	}
	return float64(size) * 8 / elapsed.Seconds() / 1e6, nil
}

// uftpRun sends src with UFTP (server in the sender's host, uftpd clients
// in the others) and returns the goodput until the server reports done.
func uftpRun(l *lab.Lab, src string, sum [32]byte, size int64, kbps int, work string, stderr io.Writer) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var daemons []*exec.Cmd
	var dirs []string
	defer func() {
		for _, d := range daemons {
			_ = d.Process.Kill()
			_ = d.Wait()
		}
	}()
	for i, h := range l.Hosts[1:] {
		dir := filepath.Join(work, fmt.Sprintf("uftp-%d-%d", kbps, i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			return 0, err
		}
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "uftpd", "-d", "-x", "0", "-I", lab.Iface,
			"-M", "239.255.13.1", "-D", dir, "-B", "4194304")
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		daemons, dirs = append(daemons, cmd), append(dirs, dir)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	// UFTP's documented LAN settings: fixed rate (or -1, as fast as the
	// interface allows), blocks sized to the MTU, no encryption.
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", l.Hosts[0].NS, "uftp", "-I", lab.Iface, "-M", "239.255.13.1",
		"-P", "239.255.13.2", "-R", fmt.Sprint(kbps), "-b", "1400", "-Y", "none", "-x", "0", "-B", "4194304", src)
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Run(); err != nil {
		return 0, fmt.Errorf("%v: %s", err, out.String())
	}
	elapsed := time.Since(start)
	for i, dir := range dirs {
		got, err := fileSum(filepath.Join(dir, filepath.Base(src)))
		if err != nil || got != sum {
			return 0, fmt.Errorf("client %d did not get the file intact (%v)", i, err)
		}
	}
	return float64(size) * 8 / elapsed.Seconds() / 1e6, nil
}
