package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
)

// TestLabFFmpeg relays a real RTP source through rtpcast: in the sender's
// namespace ffmpeg encodes a test pattern (H.264, zero-latency tuning, 6 s
// at 30 frames/s) to RTP at "rtpcast send"; in the receiver's namespace,
// whose link drops 5 % of the packets, "rtpcast recv" relays to a local
// port where ffmpeg decodes it until rtpcast recv's RTCP BYE at the end.
// Every frame must decode with no error. The
// control, the same RTP sent as plain multicast through the same loss,
// must show decode errors, or the test could not fail.
func TestLabFFmpeg(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed (apt-get install ffmpeg); skipping the RTP source test")
	}
	l := lab.New(t, 2)
	dir := t.TempDir()
	if err := l.Hosts[1].SetLoss(5); err != nil {
		t.Fatal(err)
	}
	const seconds, fps = 6, 30
	tx, rx := l.Hosts[0], l.Hosts[1]
	group := "239.255.14.20:6160"
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	ns := func(h *lab.Host, name string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	}
	start := func(c *exec.Cmd, out *bytes.Buffer) {
		t.Helper()
		if c.Stdout == nil {
			c.Stdout = out
		}
		c.Stderr = out
		c.WaitDelay = 5 * time.Second
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}

	// The receiving side first: rtpcast recv relays to 5006, where ffmpeg
	// decodes; the control's decoder listens on the group directly.
	var recvOut, decOut, ctlOut, sendOut, encOut, ctlEncOut, decFrames, ctlFrames bytes.Buffer
	// rtpcast itself runs in this process: its sockets are made in the
	// host's namespace.
	inHost := func(h *lab.Host, f func(context.Context, []string, io.Writer) error, out *bytes.Buffer, args ...string) chan error {
		done := make(chan error, 1)
		go func() { done <- h.Do(func() error { return f(ctx, args, out) }) }()
		return done
	}
	recv := inHost(rx, runRecv, &recvOut, "--group", group, "--iface", lab.Iface, "--to", "127.0.0.1:5006", "--rtcp-to", "127.0.0.1:5007", "--latency", "200ms", "--duration", "30s")
	sdp := func(addr string, port int) string {
		p := filepath.Join(dir, fmt.Sprintf("in-%d.sdp", port))
		s := fmt.Sprintf("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rtpcast test\r\nc=IN IP4 %s\r\nt=0 0\r\nm=video %d RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\n", addr, port)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	decode := func(sdpPath string) []string {
		// One line per decoded frame on stdout, written at once, so that
		// the count needs no clean exit; a large socket buffer, so that a
		// decoder starved of CPU on a busy machine does not drop input.
		return []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-protocol_whitelist", "file,udp,rtp", "-buffer_size", "4194304",
			"-reorder_queue_size", "0", "-threads", "1", "-i", sdpPath, "-f", "framecrc", "-flush_packets", "1", "-"}
	}

	send := inHost(tx, runSend, &sendOut, "--listen", "127.0.0.1:5004", "--group", group, "--iface", lab.Iface,
		"--latency", "200ms", "--rate", "20M", "--idle", "1s", "--duration", "30s")
	dec := ns(rx, "ffmpeg", decode(sdp("127.0.0.1", 5006))...)
	dec.Stdout = &decFrames
	start(dec, &decOut)
	ctl := ns(rx, "ffmpeg", decode(sdp("239.255.14.21", 6170))...)
	ctl.Stdout = &ctlFrames
	start(ctl, &ctlOut)
	time.Sleep(500 * time.Millisecond) // the sessions and decoders start
	// In-band parameter sets (repeat-headers) so that the decoders need
	// no sprop-parameter-sets in their SDP.
	encode := func(dst string) []string {
		return []string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-re", "-f", "lavfi", "-i",
			fmt.Sprintf("testsrc2=size=640x360:rate=%d", fps), "-t", strconv.Itoa(seconds), "-c:v", "libx264",
			"-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-x264-params", "repeat-headers=1",
			"-pkt_size", "1200", "-f", "rtp", "-payload_type", "96", dst}
	}
	// The encoder's RTCP goes to rtpcast's port too (rtcp-mux) and passes
	// through to the decoder's RTCP port. When the stream ends, rtpcast
	// recv sends a BYE behind the last RTP packet, which ends the decoder:
	// it then flushes every frame.
	enc := ns(tx, "ffmpeg", encode("rtp://127.0.0.1:5004?rtcpport=5004")...)
	start(enc, &encOut)
	ctlEnc := ns(tx, "ffmpeg", encode("rtp://239.255.14.21:6170?ttl=1&localaddr="+tx.IP4.String())...)
	start(ctlEnc, &ctlEncOut)
	for _, c := range []*exec.Cmd{enc, ctlEnc} {
		if err := c.Wait(); err != nil {
			t.Fatalf("encoder: %v\n%s%s", err, encOut.String(), ctlEncOut.String())
		}
	}
	if err := <-send; err != nil {
		t.Fatalf("rtpcast send: %v\n%s", err, sendOut.String())
	}
	if err := <-recv; err != nil {
		t.Fatalf("rtpcast recv: %v\n%s", err, recvOut.String())
	}
	// The decoder through rtpcast ends on the BYE; the control's does not
	// (ffmpeg ignores its encoder's BYE, which follows a sender report in
	// one compound packet), so it is stopped.
	decDone := make(chan error, 1)
	go func() { decDone <- dec.Wait() }()
	select {
	case err := <-decDone:
		if err != nil {
			t.Errorf("the decoder through rtpcast: %v", err)
		}
	case <-time.After(5 * time.Second):
		_ = dec.Process.Kill()
		<-decDone
		t.Errorf("the decoder through rtpcast did not end (no RTCP BYE came through)")
	}
	_ = ctl.Process.Signal(os.Interrupt)
	time.AfterFunc(2*time.Second, func() { _ = ctl.Process.Kill() })
	_ = ctl.Wait()
	t.Logf("send: %s", strings.TrimSpace(sendOut.String()))
	t.Logf("recv: %s", strings.TrimSpace(recvOut.String()))
	frames, errs := decoded(decFrames.String(), decOut.String())
	cframes, cerrs := decoded(ctlFrames.String(), ctlOut.String())
	t.Logf("through rtpcast: %d frames, %d decode errors; plain multicast: %d frames, %d decode errors", frames, errs, cframes, cerrs)
	// Every RTP packet the sender took came out of the receiver, the
	// encoder's BYE too, and every frame decoded without an error.
	sent, got, lost := figure(sendOut.String(), "rtp"), figure(recvOut.String(), "received"), figure(recvOut.String(), "lost")
	if sent < seconds*fps || got != sent || lost != 0 {
		t.Errorf("rtpcast: %d RTP packets sent, %d relayed, %d lost", sent, got, lost)
	}
	if rtcp := figure(recvOut.String(), "rtcp"); rtcp < 1 || rtcp != figure(sendOut.String(), "rtcp") {
		t.Errorf("rtpcast: %d RTCP packets sent, %d relayed", figure(sendOut.String(), "rtcp"), rtcp)
	}
	if frames != seconds*fps || errs != 0 {
		t.Errorf("through rtpcast: %d frames of %d, %d decode errors; decoder said:\n%s", frames, seconds*fps, errs, tail(decOut.String()))
	}
	if cerrs == 0 {
		t.Errorf("the control (plain multicast through the same loss) decoded with no error: the test cannot fail\n%s", tail(ctlOut.String()))
	}
}

// decoded returns the frames ffmpeg decoded (its framecrc lines) and its
// decode errors and concealment messages.
func decoded(crc, log string) (frames, errs int) {
	for _, line := range strings.Split(crc, "\n") {
		if strings.HasPrefix(line, "0,") {
			frames++
		}
	}
	for _, line := range strings.Split(log, "\n") {
		l := strings.ToLower(line)
		if strings.Contains(l, "error") || strings.Contains(l, "concealing") || strings.Contains(l, "corrupt") ||
			strings.Contains(l, "missing") || strings.Contains(l, "invalid") {
			errs++
		}
	}
	return frames, errs
}

// figure returns the number after "name=" in out, -1 if none.
func figure(out, name string) int {
	m := regexp.MustCompile(`\b` + name + `=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
