// Command filecast distributes files over IP multicast with Shoal (NORM,
// RFC 5740): one sender, any number of receivers, reliable delivery with
// NACK repair and FEC. Its receivers also accept files from the reference
// NORM implementation's senders, and its sender serves their receivers.
//
//	filecast send [flags] PATH...     send files and directory trees
//	filecast recv --dir DIR [flags]   receive into DIR
//	filecast demo [flags]             a sender and receivers in this process, over a simulated lossy network
//	filecast keygen --out FILE        write a group key (or with --sign a signing key pair) for --key
//
// Run "filecast CMD -h" for a command's flags.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// The progress bars, the logger and the commands' own messages write
	// from different goroutines.
	var mu sync.Mutex
	stdout, stderr = &lockedWriter{mu: &mu, w: stdout}, &lockedWriter{mu: &mu, w: stderr}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: filecast send|recv|demo|keygen [flags]   (filecast CMD -h for flags)")
		return 2
	}
	switch args[0] {
	case "send":
		return runSend(args[1:], stdout, stderr)
	case "recv":
		return runRecv(args[1:], stdout, stderr)
	case "demo":
		return runDemo(args[1:], stdout, stderr)
	case "keygen":
		return runKeygen(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "filecast: unknown command %q\n", args[0])
	return 2
}

// lockedWriter serializes writes to w under mu.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newLogger returns a zap logger at level writing to w, and the same
// logger as the *slog.Logger the library takes.
func newLogger(level string, w io.Writer) (*zap.Logger, *slog.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	core := zapcore.NewCore(enc, zapcore.AddSync(w), lvl)
	zl := zap.New(core)
	return zl, slog.New(zapslog.NewHandler(core)), nil
}

// parsePct reads a percentage such as 5% or 0.5.
func parsePct(s string) (float64, error) {
	p, pct := strings.CutSuffix(s, "%")
	v, err := strconv.ParseFloat(p, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad percentage %q", s)
	}
	if pct || v > 1 {
		v /= 100
	}
	if v >= 1 {
		return 0, fmt.Errorf("loss %q must be below 100%%", s)
	}
	return v, nil
}

// parseSize reads a size such as 32MiB, 1GB or 4096.
func parseSize(s string) (int64, error) {
	units := []struct {
		suf string
		m   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	m := 1.0
	for _, u := range units {
		if strings.HasSuffix(s, u.suf) {
			s, m = strings.TrimSuffix(s, u.suf), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(v * m), nil
}
