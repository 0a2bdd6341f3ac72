// Command rtpcast relays RTP media over IP multicast with Shoal: the
// sender takes RTP datagrams from a local UDP port (from ffmpeg, GStreamer,
// a camera) and casts each packet as one message of a deadline-bounded
// Shoal stream; each receiver repairs losses by NACK and FEC within the
// latency budget, puts the packets back in RTP order through a jitter
// buffer, and relays them to a local UDP port for a player.
//
//	rtpcast send --listen 127.0.0.1:5004 --group ADDR:PORT [--iface IF] [--latency 200ms] [--auto-parity N] [--backoff B] [--rate R]
//	rtpcast recv --group ADDR:PORT --to 127.0.0.1:5006 [--rtcp-to ADDR:PORT] [--iface IF] [--latency 200ms] [--stats]
//
// RTCP that arrives on the listening port (rtcp-mux) passes through
// untouched, in its place in the stream: to the --to address, or to
// --rtcp-to for a player that takes RTCP on a port of its own (ffmpeg with
// an SDP file listens on the RTP port + 1). When the sender ends the
// stream, rtpcast recv relays what is buffered and then sends an RTCP BYE
// of its own for the last SSRC to the --to address, behind the last RTP
// packet, so that a player sees the end (ffmpeg then flushes its last
// frames and exits).
//
// Both commands stop on SIGINT or SIGTERM, after --duration if set, and
// the sender also after --idle without input; each prints its final
// figures at exit.
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shoalnet/shoal/internal/bitrate"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
	"github.com/shoalnet/shoal/shoalrtp"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: rtpcast send|recv [flags]   (rtpcast CMD -h for flags)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "send":
		err = runSend(ctx, args[1:], stdout)
	case "recv":
		err = runRecv(ctx, args[1:], stdout)
	default:
		err = fmt.Errorf("unknown command %q", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rtpcast: %v\n", err)
		return 1
	}
	return 0
}

type common struct {
	group    string
	iface    string
	latency  time.Duration
	duration time.Duration
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.group, "group", "", "multicast group ADDR:PORT (required)")
	fs.StringVar(&c.iface, "iface", "", "interface to join and send on (default: the system's choice)")
	fs.DurationVar(&c.latency, "latency", 200*time.Millisecond, "latency budget: repair and playout deadline")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0: run until interrupted)")
}

func (c *common) parse() (netip.AddrPort, error) {
	g, err := netip.ParseAddrPort(c.group)
	if err != nil {
		return g, fmt.Errorf("--group: %v", err)
	}
	if c.latency <= 0 {
		return g, errors.New("--latency must be positive")
	}
	return g, nil
}

func (c *common) context(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.duration > 0 {
		return context.WithTimeout(ctx, c.duration)
	}
	return context.WithCancel(ctx)
}

func runSend(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rtpcast send", flag.ContinueOnError)
	var c common
	c.flags(fs)
	listen := fs.String("listen", "127.0.0.1:5004", "local UDP address to take RTP from")
	// 5 of 16 and NACKs at once keep 99 % on time at 10 % loss and a 50 ms
	// round trip with a 200 ms budget (bench rtp); 4 and a back-off of 1
	// reached 95 %: the NACK, the sender's aggregation and the repair did
	// not fit in the budget after a block's parity fell short.
	autoParity := fs.Int("auto-parity", 5, "proactive FEC parity packets per block of 16")
	backoff := fs.Int("backoff", 0, "NACK back-off factor: receivers spread their NACKs over this many round trips (0: at once; raise it for groups of many hundreds)")
	rateS := fs.String("rate", "20M", "send rate cap in bits/s (media, parity and repairs)")
	idle := fs.Duration("idle", 0, "stop when no RTP arrived for this long after the first (0: never)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	group, err := c.parse()
	if err != nil {
		return err
	}
	rate, err := bitrate.Parse(*rateS)
	if err != nil {
		return fmt.Errorf("--rate: %v", err)
	}
	if *autoParity < 0 || *autoParity > 16 {
		return errors.New("--auto-parity must be 0..16")
	}
	if *backoff < 0 || *backoff > 15 {
		return errors.New("--backoff must be 0..15")
	}
	bo := *backoff
	if bo == 0 {
		bo = -1 // sender.Config's zero value means its default
	}
	ctx, cancel := c.context(ctx)
	defer cancel()
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	defer pc.Close()
	s, err := session.New(session.Config{Group: group, Interface: c.iface, Sender: sender.Config{
		Rate: rate / 8, BlockLen: 16, Parity: max(*autoParity, 4), AutoParity: *autoParity,
		// Media sessions are short-lived and latency-bound: start from a
		// LAN-sized round trip guess rather than the conservative default.
		GRTT: 10 * time.Millisecond,
		// NACKs must get through within the budget: with no back-off
		// receivers NACK at once and the sender aggregates for one GRTT.
		Backoff: bo,
	}})
	if err != nil {
		return err
	}
	defer closeSession(s)
	st, err := s.OpenStream(ctx, session.StreamOptions{MaxAge: c.latency, BlockTime: c.latency / 8, Info: []byte("rtpcast")})
	if err != nil {
		return err
	}
	tx := shoalrtp.NewSender(st)
	go func() {
		<-ctx.Done()
		pc.SetReadDeadline(time.Now()) // unblock the read loop
	}()
	buf := make([]byte, 65536)
	invalid := 0
	for ctx.Err() == nil {
		if *idle > 0 && tx.Packets > 0 {
			pc.SetReadDeadline(time.Now().Add(*idle))
		}
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return err
		}
		if err := tx.WriteRTP(ctx, buf[:n]); errors.Is(err, shoalrtp.ErrNotRTP) {
			invalid++
		} else if err != nil && ctx.Err() == nil {
			return err
		}
	}
	err = tx.Close()
	fmt.Fprintf(stdout, "rtpcast send: rtp=%d rtcp=%d invalid=%d sender=%+v\n", tx.Packets, tx.RTCP, invalid, s.Stats().Sender)
	return err
}

// closeSession closes s, letting it flush for a moment.
func closeSession(s *session.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}

func runRecv(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rtpcast recv", flag.ContinueOnError)
	var c common
	c.flags(fs)
	to := fs.String("to", "127.0.0.1:5006", "local UDP address to relay RTP to")
	rtcpTo := fs.String("rtcp-to", "", "local UDP address to relay RTCP to (default: the --to address)")
	stats := fs.Bool("stats", false, "print the figures once a second")
	if err := fs.Parse(args); err != nil {
		return err
	}
	group, err := c.parse()
	if err != nil {
		return err
	}
	dst, err := net.ResolveUDPAddr("udp", *to)
	if err != nil {
		return fmt.Errorf("--to: %v", err)
	}
	ctx, cancel := c.context(ctx)
	defer cancel()
	out, err := net.DialUDP("udp", nil, dst)
	if err != nil {
		return err
	}
	defer out.Close()
	rtcpOut := out
	if *rtcpTo != "" {
		a, err := net.ResolveUDPAddr("udp", *rtcpTo)
		if err != nil {
			return fmt.Errorf("--rtcp-to: %v", err)
		}
		if rtcpOut, err = net.DialUDP("udp", nil, a); err != nil {
			return err
		}
		defer rtcpOut.Close()
	}
	s, err := session.New(session.Config{Group: group, Interface: c.iface})
	if err != nil {
		return err
	}
	defer closeSession(s)
	o, err := s.Accept(ctx)
	if err != nil {
		return err
	}
	rx := shoalrtp.NewReceiver(o, shoalrtp.ReceiverConfig{Latency: c.latency, Session: s,
		OnRTCP: func(b []byte) { _, _ = rtcpOut.Write(b) }})
	report := func() {
		st := rx.Stats()
		fmt.Fprintf(stdout, "rtpcast recv: received=%d fec_recovered=%d nack_recovered=%d late=%d lost=%d messages_lost=%d rtcp=%d added_p50=%v added_p99=%v\n",
			st.Received, st.FECRecovered, st.NACKRecovered, st.Late, st.Lost, st.MessagesLost, st.RTCP, st.AddedP50, st.AddedP99)
	}
	defer report()
	if *stats {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					report()
				}
			}
		}()
	}
	var ssrc uint32
	relayed := false
	for {
		p, err := rx.ReadPacket(ctx)
		if err == io.EOF && relayed {
			// With a reason ("end"): ffmpeg ignores RTCP shorter than an
			// RTP header, and a BYE behind an SR in a compound packet.
			bye := append(binary.BigEndian.AppendUint32([]byte{0x81, 203, 0, 2}, ssrc), 3, 'e', 'n', 'd')
			// On the RTP port (players demultiplex RTCP there, RFC 5761):
			// behind the last packets on the same socket, so a player that
			// reads its RTCP port first cannot see the end before them.
			_, _ = out.Write(bye)
		}
		if err == io.EOF || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		b, err := p.Marshal()
		if err != nil {
			return err
		}
		// A player not listening (yet) is no reason to stop relaying.
		_, _ = out.Write(b)
		ssrc, relayed = p.SSRC, true
	}
}
