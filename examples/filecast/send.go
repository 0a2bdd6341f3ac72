package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/internal/bitrate"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// fileItem is one file to send.
type fileItem struct {
	path string
	name string // relative, '/' separated: what receivers call it
	size int64
	sum  [32]byte
}

// collect expands paths into files: a file is sent under its base name, a
// directory as the tree under its base name.
func collect(paths []string) ([]fileItem, error) {
	var out []fileItem
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, fileItem{path: p, name: filepath.Base(p), size: fi.Size()})
			continue
		}
		root := filepath.Clean(p)
		base := filepath.Base(root)
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, fileItem{path: path, name: base + "/" + filepath.ToSlash(rel), size: info.Size()})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parseNodes reads node ids: IPv4 addresses or numbers, comma separated.
func parseNodes(s string) ([]uint32, error) {
	var ids []uint32
	for _, f := range strings.Split(s, ",") {
		id, err := parseNode(f)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// parseNode reads one node id: an IPv4 address (10.0.0.2) or a number
// (decimal, or 0x-prefixed hex), neither 0 nor NORM_NODE_ANY (0xFFFFFFFF).
func parseNode(f string) (uint32, error) {
	var id uint32
	if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
		b := a.As4()
		id = binary.BigEndian.Uint32(b[:])
	} else {
		v, err := strconv.ParseUint(f, 0, 32)
		if err != nil {
			return 0, fmt.Errorf("bad node id %q (an IPv4 address or a number)", f)
		}
		id = uint32(v)
	}
	if id == 0 || id == 0xffffffff {
		return 0, fmt.Errorf("bad node id %q (0 and 255.255.255.255 are reserved)", f)
	}
	return id, nil
}

type sendReport struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
	// Seconds runs from the first file queued until every receiver
	// acknowledged (--ack), or else until the end-of-transmission flushes
	// were over.
	Seconds float64         `json:"seconds"`
	Mbps    float64         `json:"mbps"`
	Acks    map[string]bool `json:"acks,omitempty"`
	// Under congestion control: the rate it set at the end and the
	// highest seen (sampled every 200 ms), in Mbit/s.
	CCFinalMbps float64 `json:"cc_final_mbps,omitempty"`
	CCPeakMbps  float64 `json:"cc_peak_mbps,omitempty"`
}

func runSend(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("filecast send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c commonFlags
	c.register(fs)
	rate := fs.String("rate", "", "send rate in bits/s (suffixes k, M, G); default 100M, or with --cc the rate to start from, default 1M")
	cc := fs.Bool("cc", false, "NORM congestion control: find the rate the network and the slowest receiver take, starting at --rate")
	maxRate := fs.String("max-rate", "", "with --cc: never send faster than this (bits/s; default: no bound)")
	segment := fs.Int("segment", 1400, "segment size in bytes")
	block := fs.Int("block", 64, "source segments per FEC block")
	parity := fs.Int("parity", 16, "parity segments per block available for repair")
	auto := fs.Int("auto-parity", 0, "parity segments per block sent proactively")
	ack := fs.String("ack", "", `wait for positive acknowledgement: "auto" (every receiver heard from) or node ids, comma separated (IPv4 addresses or numbers: what each filecast recv prints at start, or sets with --node)`)
	grtt := fs.Duration("grtt", 10*time.Millisecond, "initial group round-trip time estimate; measured from then on (raise it for WAN paths with many receivers)")
	repeat := fs.Int("repeat", 1, "send every file this many times (with --auto-parity, for silent receivers on one-way links)")
	txLoss := fs.String("tx-loss", "0", "drop this share of sent packets (seeded), e.g. 1%")
	rxTimeout := fs.Duration("receiver-timeout", 10*time.Second, "with --ack: stop waiting for a receiver that confirms nothing new for this long (it then fails the acknowledgement)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "filecast send: no files given")
		return 2
	}
	if *maxRate != "" && !*cc {
		fmt.Fprintln(stderr, "filecast send: --max-rate needs --cc (without it, --rate is the rate)")
		return 2
	}
	cfg, err := c.config()
	if err != nil {
		fmt.Fprintf(stderr, "filecast send: %v\n", err)
		return 2
	}
	// A sender takes only the feedback addressed to it: other senders'
	// packets on the group, forged ones included, cost it nothing.
	cfg.SendOnly = true
	zl, log, err := newLogger(c.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "filecast send: %v\n", err)
		return 2
	}
	defer zl.Sync()
	var bits, maxBits float64 // 0: the default
	if *rate != "" {
		if bits, err = bitrate.Parse(*rate); err != nil {
			fmt.Fprintf(stderr, "filecast send: --rate: %v\n", err)
			return 2
		}
	} else if !*cc {
		bits = 100e6
	}
	if *maxRate != "" {
		if maxBits, err = bitrate.Parse(*maxRate); err != nil {
			fmt.Fprintf(stderr, "filecast send: --max-rate: %v\n", err)
			return 2
		}
	}
	loss, err := parsePct(*txLoss)
	if err != nil {
		fmt.Fprintf(stderr, "filecast send: %v\n", err)
		return 2
	}
	files, err := collect(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "filecast send: %v\n", err)
		return 1
	}
	*segment = fitSegment(fs, *segment, cfg.Security) // keys.go
	scfg := sender.Config{Rate: bits / 8, SegmentSize: *segment, BlockLen: *block, Parity: *parity, AutoParity: *auto, GRTT: *grtt,
		StreamTimeout: *rxTimeout}
	// Keep up to 1024 files for repair (files are opened only to be read,
	// a block at a time), or a tree of small files outruns the default
	// 256-object cache before a starved receiver's NACK arrives, and the
	// files it misses are squelched. With --ack, object flow control also
	// keeps each file until every receiver confirmed it; a receiver takes
	// 256 files at a time (its MaxObjects), and a window far beyond that
	// only has it defer files to ask for them again.
	scfg.CacheObjects = min(max(len(files)**repeat, 256), 1024)
	if *cc {
		// Rate, if given, is the rate to start from.
		scfg.CC = &congestion.Config{MaxRate: maxBits / 8}
	}
	switch {
	case *ack == "auto":
		scfg.TrackReceivers = true
	case *ack != "":
		if scfg.AckingNodes, err = parseNodes(*ack); err != nil {
			fmt.Fprintf(stderr, "filecast send: %v\n", err)
			return 2
		}
	}
	cfg.Sender, cfg.Logger = scfg, log
	if loss > 0 {
		pc, err := session.Listen(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "filecast send: %v\n", err)
			return 1
		}
		cfg.Conn = session.NewLossConn(pc, session.Loss{Rate: loss}, session.Loss{}, cfg.Seed)
	}
	cfg.Tracer = debugTracer(c.logLevel, log)
	s, err := session.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "filecast send: %v\n", err)
		return 1
	}
	ctx := context.Background()
	var total int64
	for i := range files {
		f := &files[i]
		if f.sum, err = hashFile(f.path); err != nil {
			fmt.Fprintf(stderr, "filecast send: %v\n", err)
			return 1
		}
		total += f.size * int64(*repeat)
	}
	prog := newProgress(stderr, "sending", total)
	start := time.Now()
	var last session.ObjectID
	openFs := newOpenFiles(64)
	defer openFs.closeAll()
	// Progress, and the highest rate (bytes per second), from the
	// session's counters.
	done, sampled := make(chan struct{}), make(chan struct{})
	var peak float64
	go func() {
		defer close(sampled)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case ev := <-s.Events():
				if e, ok := ev.(session.SlowReceiver); ok {
					// Flow control stopped waiting for it (it confirmed
					// nothing for the sender's StreamTimeout): it will
					// miss files, and the acknowledgement will say so.
					fmt.Fprintf(stderr, "filecast: %s fell behind; no longer waited for\n", nodeName(uint32(e.Node)))
				}
			case <-t.C:
				st := s.Stats()
				prog.set(int64(st.Sender.DataSymbols) * int64(*segment))
				peak = max(peak, st.Rate)
			case <-done:
				return
			}
		}
	}()
	for rep := 0; rep < *repeat; rep++ {
		for _, f := range files {
			fh := openFs.file(f.path, f.size)
			if last, err = s.SendFileExt(ctx, fh, f.size, []byte(f.name), appendDigest(nil, f.sum)); err != nil {
				fmt.Fprintf(stderr, "filecast send: %s: %v\n", f.name, err)
				return 1
			}
			log.Info("queued", "file", f.name, "bytes", f.size)
		}
	}
	rep := sendReport{Files: len(files) * *repeat, Bytes: total}
	status := 0
	var took time.Duration
	if *ack != "" {
		results, err := s.WaitAck(ctx, last)
		// Every receiver has confirmed: the transfer took this long. The
		// flushes Close still sends (a second at least) are for receivers
		// nobody waits for.
		took = time.Since(start)
		if err != nil {
			fmt.Fprintf(stderr, "filecast send: acknowledgement: %v\n", err)
			status = 1
		}
		rep.Acks = map[string]bool{}
		for _, r := range results {
			ok := r.Err == nil
			rep.Acks[nodeName(uint32(r.Node))] = ok
			if !ok {
				status = 1
				fmt.Fprintf(stderr, "filecast: %s did not acknowledge\n", nodeName(uint32(r.Node)))
			} else {
				fmt.Fprintf(stderr, "filecast: %s acknowledged everything\n", nodeName(uint32(r.Node)))
			}
		}
		if len(results) == 0 {
			fmt.Fprintln(stderr, "filecast: no receiver to acknowledge (none configured or heard)")
			status = 1
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := s.Shutdown(closeCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("close", "err", err)
	}
	close(done)
	<-sampled
	prog.finish()
	if took == 0 {
		// Without acknowledgement the sender only knows it is done when
		// its flushes are.
		took = time.Since(start)
	}
	rep.Seconds = took.Seconds()
	rep.Mbps = float64(total) * 8 / rep.Seconds / 1e6
	if *cc {
		st := s.Stats().Sender
		rep.CCFinalMbps, rep.CCPeakMbps = st.Rate*8/1e6, max(peak, st.Rate)*8/1e6
		log.Info("congestion control", "rate_mbps", rep.CCFinalMbps, "peak_mbps", rep.CCPeakMbps,
			"clr", nodeName(st.CLR), "reports", st.CCFeedback, "slow_start", st.SlowStart)
	}
	if c.json {
		_ = json.NewEncoder(stdout).Encode(rep)
	} else {
		fmt.Fprintf(stdout, "filecast: sent %d files %d bytes in %.2f s (%.1f Mbit/s)", rep.Files, rep.Bytes, rep.Seconds, rep.Mbps)
		if *cc {
			fmt.Fprintf(stdout, "; congestion control: rate %.1f Mbit/s at the end, %.1f at most", rep.CCFinalMbps, rep.CCPeakMbps)
		}
		fmt.Fprintln(stdout)
	}
	return status
}

func hashFile(path string) ([32]byte, error) {
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

// commonFlags are the flags send and recv share.
type commonFlags struct {
	group    string
	iface    string
	ttl      int
	json     bool
	logLevel string
	node     string
	sec      securityFlags // keys.go
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.group, "group", "239.255.1.1:6003", "multicast group and port")
	fs.StringVar(&c.iface, "iface", "", "network interface (default: the system's choice)")
	fs.IntVar(&c.ttl, "ttl", 1, "multicast TTL / hop limit (1: this subnet)")
	fs.BoolVar(&c.json, "json", false, "print a machine-readable report")
	fs.StringVar(&c.logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	fs.StringVar(&c.node, "node", "", "this node's NORM id: an IPv4 address or a number (default: random, new every run; recv prints it). "+
		"Set it to be listed in another sender's --ack, or to keep one identity across restarts; every node of the group needs its own")
	c.sec.register(fs)
}

func (c *commonFlags) config() (session.Config, error) {
	g, err := netip.ParseAddrPort(c.group)
	if err != nil {
		return session.Config{}, fmt.Errorf("--group: %v", err)
	}
	cfg := session.Config{Group: g, Interface: c.iface, TTL: c.ttl}
	if cfg.Security, err = c.sec.config(g.String()); err != nil {
		return session.Config{}, err
	}
	if c.node != "" {
		id, err := parseNode(c.node)
		if err != nil {
			return session.Config{}, fmt.Errorf("--node: %v", err)
		}
		cfg.NodeID = session.NodeID(id)
	}
	return cfg, nil
}
