package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/internal/bitrate"
	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/internal/simrun"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// The demo runs a sender and receivers in this process over the simulated
// network of package simnet (no root, no packet on any interface), in
// virtual time slowed to the wall clock so the progress is watchable.

var demoGroup = netip.MustParseAddrPort("239.255.1.1:6003")

type demoTx struct {
	net *simnet.Network
	id  simnet.NodeID
	s   *sender.Sender
	out framing.Outbox
}

func (e *demoTx) Handle(p simnet.Packet) time.Time {
	_ = e.s.HandlePacket(p.At, e.net.Addr(p.From), p.Payload)
	return e.Poll(p.At)
}

func (e *demoTx) Poll(now time.Time) time.Time {
	e.out.Reset()
	wake := e.s.Poll(now, &e.out)
	for i := range e.out.Len() {
		b, _ := e.out.Packet(i)
		e.net.Send(now, e.id, demoGroup, b)
	}
	e.s.Events()
	return wake
}

type demoRx struct {
	n     int
	net   *simnet.Network
	id    simnet.NodeID
	r     *receiver.Receiver
	out   framing.Outbox
	st    *store
	info  map[uint16]session.ObjectInfo
	prog  *progress
	wrote int64
	res   *result
	done  *int
}

func (e *demoRx) Handle(p simnet.Packet) time.Time {
	_ = e.r.HandlePacket(p.At, e.net.Addr(p.From), p.Payload)
	return e.Poll(p.At)
}

func (e *demoRx) Poll(now time.Time) time.Time {
	e.out.Reset()
	wake := e.r.Poll(now, &e.out)
	for i := range e.out.Len() {
		b, _ := e.out.Packet(i)
		e.net.Send(now, e.id, demoGroup, b)
	}
	for _, ev := range e.r.Events() {
		oi := e.info[ev.Object]
		oi.Sender, oi.ID, oi.Kind = session.NodeID(ev.Sender), session.ObjectID(ev.Object), session.KindFile
		switch ev.Kind {
		case receiver.EventStarted:
			oi.Size = ev.Size
		case receiver.EventInfo:
			oi.Info, oi.InfoExt = append([]byte(nil), ev.Info...), append(framing.Extensions(nil), ev.InfoExt...)
		case receiver.EventCompleted, receiver.EventAborted:
			r := e.st.finish(oi, ev.Err)
			e.res = &r
			*e.done++
		}
		e.info[ev.Object] = oi
	}
	return wake
}

// counting reports bytes written through a receiver's sink.
type counting struct {
	w  io.WriterAt
	rx *demoRx
}

func (c counting) WriteAt(b []byte, off int64) (int, error) {
	n, err := c.w.WriteAt(b, off)
	c.rx.wrote += int64(n)
	c.rx.prog.setBar(c.rx.n, c.rx.wrote)
	return n, err
}

// clock slows virtual time down to the wall clock.
type clock struct {
	vstart, wstart time.Time
}

func (c *clock) Handle(simnet.Packet) time.Time { return time.Time{} }

func (c *clock) Poll(now time.Time) time.Time {
	if d := now.Sub(c.vstart) - time.Since(c.wstart); d > 0 {
		time.Sleep(d)
	}
	return now.Add(20 * time.Millisecond)
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("filecast demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	receivers := fs.Int("receivers", 3, "number of receivers")
	sizeS := fs.String("size", "32MiB", "size of the file to send")
	lossS := fs.String("loss", "5%", "random loss on every receiver's link")
	rateS := fs.String("rate", "200M", "send rate in bits/s")
	seed := fs.Uint64("seed", 1, "random seed (the same seed gives the same run)")
	fast := fs.Bool("fast", false, "run in virtual time as fast as possible instead of at wall-clock speed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	size, err := parseSize(*sizeS)
	if err != nil || *receivers < 1 {
		fmt.Fprintf(stderr, "filecast demo: need --receivers >= 1 and a size: %v\n", err)
		return 2
	}
	loss, err := parsePct(*lossS)
	if err != nil {
		fmt.Fprintf(stderr, "filecast demo: %v\n", err)
		return 2
	}
	bits, err := bitrate.Parse(*rateS)
	if err != nil {
		fmt.Fprintf(stderr, "filecast demo: %v\n", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "filecast-demo-")
	if err != nil {
		fmt.Fprintf(stderr, "filecast demo: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	content := simrun.PatternReader(*seed, 0, size)
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(content, 0, size)); err != nil {
		fmt.Fprintf(stderr, "filecast demo: %v\n", err)
		return 1
	}
	var sum [32]byte
	h.Sum(sum[:0])

	n := simnet.New(simnet.Config{Seed: *seed})
	start := n.Now()
	link := simnet.LinkConfig{Delay: 2 * time.Millisecond, Jitter: 500 * time.Microsecond}
	txNode := n.AddNode("sender", simnet.NodeConfig{Up: link, Down: link})
	n.Join(txNode, demoGroup)
	s, err := sender.New(sender.Config{NodeID: 0x0a000001, Rate: bits / 8, Parity: 16, AutoParity: autoFor(loss),
		GroupSize: float64(*receivers), GRTT: 50 * time.Millisecond, Rand: rand.New(rand.NewPCG(*seed, 1))}, start)
	if err != nil {
		fmt.Fprintf(stderr, "filecast demo: %v\n", err)
		return 1
	}
	id, err := s.SendFile(content, size, []byte("demo.bin"))
	if err == nil {
		err = s.SetInfoExtension(id, appendDigest(nil, sum))
	}
	if err != nil {
		fmt.Fprintf(stderr, "filecast demo: %v\n", err)
		return 1
	}
	s.Close()
	eps := []simnet.Endpoint{&demoTx{net: n, id: txNode, s: s}}
	names, totals := make([]string, *receivers), make([]int64, *receivers)
	for i := range names {
		names[i], totals[i] = fmt.Sprintf("receiver %d", i+1), size
	}
	prog := newMultiProgress(stderr, names, totals)
	done := 0
	var rxs []*demoRx
	for i := range *receivers {
		rdir := filepath.Join(dir, fmt.Sprintf("rx%d", i+1))
		if err := os.Mkdir(rdir, 0o755); err != nil {
			fmt.Fprintf(stderr, "filecast demo: %v\n", err)
			return 1
		}
		st, _ := newStore(rdir)
		down := link
		if loss > 0 {
			down.Loss = simnet.Bernoulli{P: loss}
		}
		node := n.AddNode(names[i], simnet.NodeConfig{Up: link, Down: down})
		n.Join(node, demoGroup)
		e := &demoRx{n: i, net: n, id: node, st: st, info: map[uint16]session.ObjectInfo{}, prog: prog, done: &done}
		e.r, err = receiver.New(receiver.Config{NodeID: 0x0b000001 + uint32(i), Rand: rand.New(rand.NewPCG(*seed, uint64(i)+2)),
			Sink: func(info receiver.ObjectInfo) (io.WriterAt, error) {
				w, err := st.sink(session.ObjectInfo{Sender: session.NodeID(info.Sender), ID: session.ObjectID(info.Object), Kind: session.KindFile, Size: info.Size})
				if err != nil {
					return nil, err
				}
				return counting{w, e}, nil
			}})
		if err != nil {
			fmt.Fprintf(stderr, "filecast demo: %v\n", err)
			return 1
		}
		rxs = append(rxs, e)
		eps = append(eps, e)
	}
	if !*fast {
		n.AddNode("clock", simnet.NodeConfig{}) // Run takes one endpoint per node; this one joins no group
		eps = append(eps, &clock{vstart: start, wstart: time.Now()})
	}
	wall := time.Now()
	res := simnet.Run(n, eps, simnet.Limits{Until: start.Add(10 * time.Minute), Done: func() bool { return done == len(rxs) }})
	prog.finish()
	virtual := res.Now.Sub(start)
	failed := 0
	for i, e := range rxs {
		switch {
		case e.res == nil:
			failed++
			fmt.Fprintf(stdout, "filecast: receiver %d: FAILED: the file did not arrive in %v of virtual time\n", i+1, virtual)
		case !e.res.OK || !e.res.Verified || e.res.SHA256 != hex.EncodeToString(sum[:]):
			failed++
			fmt.Fprintf(stdout, "filecast: receiver %d: FAILED %s: %s\n", i+1, e.res.Name, e.res.Err)
		default:
			rel, _ := filepath.Rel(dir, e.res.Path)
			fmt.Fprintf(stdout, "filecast: receiver %d: received %s %d bytes sha256=%s ok\n", i+1, rel, e.res.Bytes, e.res.SHA256)
		}
	}
	st := s.Stats()
	var nacks uint64
	for _, e := range rxs {
		nacks += e.r.Stats().NacksSent
	}
	fmt.Fprintf(stdout, "filecast: demo: %d/%d receivers verified %s through %s loss in %.2f s (virtual %.2f s, %.1f Mbit/s); %d NACKs, %d repair symbols for %d data symbols\n",
		len(rxs)-failed, len(rxs), *sizeS, *lossS, time.Since(wall).Seconds(), virtual.Seconds(),
		float64(size)*8/virtual.Seconds()/1e6, nacks, st.RepairParity+st.RepairSource, st.DataSymbols)
	return exitFor(failed)
}

// autoFor is proactive parity for a known loss rate (of 64-segment blocks):
// the average losses plus a quarter, within the 16 parity segments.
func autoFor(loss float64) int {
	return min(16, int(64*loss*1.25+0.999))
}
