package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
)

// The three implementations bench filecast runs. Each run: receivers start
// on every host but the first and join the group (see settle); the clock
// starts as the sender is started on the first host, and stops when the
// last receiver prints that it holds the whole file. Only then are the
// files checked against the SHA-256 of the file sent, outside the timing.

// filecastRun sends the file with filecast send --ack auto to filecast
// recv on every receiver host. Done is the receiver's JSON "received"
// line, which filecast prints once it has checked the file against the
// sender's SHA-256. The sender's exit is timed too: with --ack it should
// follow the last acknowledgement at once.
func filecastRun(e *castEnv) castRun {
	port := e.nextPort()
	const addr = "239.255.12.1"
	group := fmt.Sprintf("%s:%d", addr, port)
	dirs, err := e.receiverDirs("filecast", port)
	if err != nil {
		return startErr(err)
	}
	defer removeDirs(dirs)
	var rx []*proc
	var tx *proc
	defer func() {
		stopAll(rx)
		if tx != nil {
			tx.stop()
		}
	}()
	isResult := func(l string) bool { return strings.HasPrefix(l, "{") }
	for i, h := range e.lab.Hosts[1:] {
		// The default --linger: the receiver stays to answer the sender's
		// acknowledgement requests until the sender ends.
		p, err := startProc("filecast recv", h.NS, isResult, nil, e.filecast, "recv", "--dir", dirs[i], "--group", group,
			"--iface", lab.Iface, "--count", "1", "--json")
		if err != nil {
			return startErr(err)
		}
		rx = append(rx, p)
	}
	if err := e.settle(addr); err != nil {
		return castRun{err: err}
	}
	args := []string{"send", "--group", group, "--iface", lab.Iface, "--ack", "auto", "--json"}
	if e.cc {
		args = append(args, "--cc")
	} else {
		args = append(args, "--rate", fmt.Sprint(e.rate))
	}
	start := time.Now()
	deadline := start.Add(e.timeout)
	tx, err = startProc("filecast send", e.lab.Hosts[0].NS, nil, nil, e.filecast, append(args, e.src)...)
	if err != nil {
		return startErr(err)
	}
	last, lines, err := waitMarks(rx, deadline)
	if err != nil {
		return castRun{err: err}
	}
	res := castRun{took: last.Sub(start)}
	for i, l := range lines {
		var r struct {
			OK   bool   `json:"ok"`
			Path string `json:"path"`
		}
		if json.Unmarshal([]byte(l), &r) != nil || !r.OK {
			return castRun{err: fmt.Errorf("filecast recv %d: %s", i, l)}
		}
		path := r.Path
		if !filepath.IsAbs(path) {
			path = filepath.Join(dirs[i], filepath.Base(e.src))
		}
		if err := e.verify(path); err != nil {
			return castRun{err: fmt.Errorf("filecast recv %d: %w", i, err)}
		}
	}
	if !tx.waitExit(deadline) {
		return castRun{err: fmt.Errorf("filecast send did not exit within %v; its last output:\n%s", e.timeout, tx.output())}
	}
	res.exitAfter = tx.exitAt.Sub(last)
	if !tx.state.Success() {
		fmt.Fprintf(e.stderr, "bench filecast: filecast send: %v; its last output:\n%s\n", tx.state, tx.output())
	}
	// The receivers end with the sender; give them a moment, so that
	// their CPU time is theirs and not a kill's.
	for _, p := range rx {
		p.waitExit(time.Now().Add(2 * time.Second))
	}
	res.rxCPU = stopAll(rx)
	return res
}

// uftpRun sends the file with UFTP: uftp in the first host, uftpd in the
// others, tuned for a fast LAN: 4 MiB socket buffers, 1400-byte blocks, no
// encryption, a closed group. Done is uftpd's "File transfer complete" log
// line.
func uftpRun(e *castEnv) castRun {
	port := e.nextPort()
	dirs, err := e.receiverDirs("uftp", port)
	if err != nil {
		return startErr(err)
	}
	defer removeDirs(dirs)
	var rx []*proc
	var tx *proc
	defer func() {
		stopAll(rx)
		if tx != nil {
			tx.stop()
		}
	}()
	pub, priv := "239.255.13.1", "239.255.13.2"
	var ids []string
	isDone := func(l string) bool { return strings.Contains(l, "File transfer complete") }
	for i, h := range e.lab.Hosts[1:] {
		id := fmt.Sprintf("0x%08X", binary.BigEndian.Uint32(h.IP4.AsSlice()))
		ids = append(ids, id)
		// -d: in the foreground, logging to stderr; -q: no DNS lookup.
		p, err := startProc("uftpd", h.NS, nil, isDone, "uftpd", "-d", "-q", "-U", id, "-p", fmt.Sprint(port),
			"-I", lab.Iface, "-M", pub, "-D", dirs[i], "-B", fmt.Sprint(castSockBuf))
		if err != nil {
			return startErr(err)
		}
		rx = append(rx, p)
	}
	if err := e.settle(pub); err != nil {
		return castRun{err: err}
	}
	// -H names the receivers (a closed group), so that uftp starts as soon
	// as they have registered; an open group spends its whole announce
	// phase, about 2 s, waiting for receivers it does not know of.
	args := []string{"-I", lab.Iface, "-M", pub, "-P", priv, "-p", fmt.Sprint(port), "-H", strings.Join(ids, ","),
		"-B", fmt.Sprint(castSockBuf), "-b", fmt.Sprint(castSegment), "-Y", "none"}
	if e.cc {
		args = append(args, "-C", "tfmcc")
	} else {
		args = append(args, "-R", fmt.Sprint(e.rate/1000)) // kbit/s
	}
	start := time.Now()
	deadline := start.Add(e.timeout)
	tx, err = startProc("uftp", e.lab.Hosts[0].NS, nil, nil, "uftp", append(args, e.src)...)
	if err != nil {
		return startErr(err)
	}
	last, _, err := waitMarks(rx, deadline)
	if err != nil {
		return castRun{err: err}
	}
	res := castRun{took: last.Sub(start)}
	for i, d := range dirs {
		if err := e.verify(filepath.Join(d, filepath.Base(e.src))); err != nil {
			return castRun{err: fmt.Errorf("uftpd %d: %w", i, err)}
		}
	}
	// uftp closes the session with its receivers; then they idle.
	tx.waitExit(time.Now().Add(5 * time.Second))
	res.rxCPU = stopAll(rx)
	return res
}

// libnormRun sends the file with the reference NORM library, through the
// interop peer (interop/normpeer), as a file object to peers receiving
// into a directory. It uses the settings of the library's own file-cast
// tool where they matter: NACK back-off 0, a 64 MiB buffer, and the FEC
// code filecast uses (blocks of 64, up to 16 parity, none proactive).
// Done is the receiver's "OBJ file … completed" line.
func libnormRun(e *castEnv) castRun {
	port := e.nextPort()
	dirs, err := e.receiverDirs("libnorm", port)
	if err != nil {
		return startErr(err)
	}
	defer removeDirs(dirs)
	var rx []*proc
	var tx *proc
	defer func() {
		stopAll(rx)
		if tx != nil {
			tx.stop()
		}
	}()
	addr := "239.255.14.1"
	secs := fmt.Sprint(int(e.timeout.Seconds()) + 1)
	common := []string{"--addr", addr, "--port", fmt.Sprint(port), "--iface", lab.Iface, "--timeout", secs,
		"--buffer", fmt.Sprint(64 << 20), "--sockbuf", fmt.Sprint(castSockBuf)}
	isDone := func(l string) bool { return strings.HasPrefix(l, "OBJ ") }
	for i, h := range e.lab.Hosts[1:] {
		p, err := startProc("normpeer recv", h.NS, isDone, nil, e.normpeer,
			append([]string{"recv", "--dir", dirs[i], "--count", "1"}, common...)...)
		if err != nil {
			return startErr(err)
		}
		rx = append(rx, p)
	}
	if err := e.settle(addr); err != nil {
		return castRun{err: err}
	}
	args := append([]string{"send", "--backoff", "0", "--segment", fmt.Sprint(castSegment), "--block", "64", "--parity", "16"}, common...)
	if e.cc {
		args = append(args, "--cc")
	} else {
		args = append(args, "--rate", fmt.Sprint(e.rate))
	}
	start := time.Now()
	deadline := start.Add(e.timeout)
	tx, err = startProc("normpeer send", e.lab.Hosts[0].NS, nil, nil, e.normpeer, append(args, "--file", e.src)...)
	if err != nil {
		return startErr(err)
	}
	last, lines, err := waitMarks(rx, deadline)
	if err != nil {
		return castRun{err: err}
	}
	res := castRun{took: last.Sub(start)}
	for i, l := range lines {
		// OBJ file <size> completed <info> <path>
		f := strings.Fields(l)
		if len(f) != 6 || f[1] != "file" || f[3] != "completed" {
			return castRun{err: fmt.Errorf("normpeer recv %d: %s", i, l)}
		}
		if err := e.verify(f[5]); err != nil {
			return castRun{err: fmt.Errorf("normpeer recv %d: %w", i, err)}
		}
	}
	// The peer lingers to answer requests; its work is done.
	res.rxCPU = stopAll(rx)
	return res
}

// buildNormpeer compiles the libnorm interop peer, as interop's tests do.
func buildNormpeer(work string) (string, error) {
	if _, err := exec.LookPath("g++"); err != nil {
		return "", fmt.Errorf("g++ is not installed, so the libnorm peer cannot be built (apt-get install g++ libnorm-dev)")
	}
	bin := filepath.Join(work, "normpeer")
	cmd := exec.Command("g++", "-O2", "-o", bin, "interop/normpeer/normpeer.cpp", "-lnorm")
	setProcAttr(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the libnorm peer failed (is libnorm-dev installed? run from the repository root): %v\n%s", err, out)
	}
	return bin, nil
}

// settle gives the receivers castSettle, and more until every receiver
// host has joined group (up to 10 s): on a loaded machine a receiver may
// take longer to start, and a sender that began before it joined would
// make it repair what it never had a chance to get.
func (e *castEnv) settle(group string) error {
	time.Sleep(castSettle)
	g, err := netip.ParseAddr(group)
	if err != nil || !g.Is4() {
		return fmt.Errorf("bad group %q", group)
	}
	want := igmpGroup(g)
	deadline := time.Now().Add(10 * time.Second)
	for _, h := range e.lab.Hosts[1:] {
		for {
			joined := false
			err := h.Do(func() error {
				b, err := os.ReadFile("/proc/thread-self/net/igmp")
				joined = err == nil && igmpHas(string(b), lab.Iface, want)
				return err
			})
			if err != nil {
				return err
			}
			if joined {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: no receiver joined %s on %s", h.Name, group, lab.Iface)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// igmpGroup is g as /proc/net/igmp prints it: a number in host byte order.
func igmpGroup(g netip.Addr) string {
	a := g.As4()
	return fmt.Sprintf("%08X", binary.NativeEndian.Uint32(a[:]))
}

// igmpHas reports whether a /proc/net/igmp listing has group (as printed
// there) on interface iface.
func igmpHas(listing, iface, group string) bool {
	in := false
	for _, l := range strings.Split(listing, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, " "):
			in = len(f) > 1 && f[1] == iface // an interface's line
		case in && f[0] == group:
			return true
		}
	}
	return false
}

func removeDirs(dirs []string) {
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
