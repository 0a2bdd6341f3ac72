package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/shoalnet/shoal/internal/lab"
	"github.com/shoalnet/shoal/sender"
	"github.com/shoalnet/shoal/session"
)

// runStream writes one stream through the namespace lab as an application
// would, with io.Copy and default settings, to receivers that read it to
// the end, and reports whether every byte arrived.
func runStream(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench stream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		size      int64 = 64 << 20
		loss      float64
		receivers = fs.Int("receivers", 2, "number of receiver hosts")
		mbit      = fs.Float64("rate", 1000, "sender rate in Mbit/s")
		timeout   = fs.Duration("timeout", 3*time.Minute, "give up after this long")
		buffer    int64
	)
	fs.Var(sizeFlag{&buffer}, "buffer", "the stream's ring buffer (StreamOptions.Buffer), e.g. 16MiB; default: the session's")
	fs.Var(sizeFlag{&size}, "size", "bytes to stream, e.g. 64MiB")
	fs.Var(pctFlag{&loss}, "loss", "random loss on every receiver's link (nftables), e.g. 5%")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if why := lab.Available(); why != "" {
		fmt.Fprintf(stderr, "bench stream: %s\n", why)
		return 1
	}
	l, done, err := openLab(*receivers + 1)
	defer done()
	if err != nil {
		fmt.Fprintf(stderr, "bench stream: %v\n", err)
		return 1
	}
	for _, h := range l.Hosts[1:] {
		if err := h.SetLoss(int(loss*100 + 0.5)); err != nil {
			fmt.Fprintf(stderr, "bench stream: %v\n", err)
			return 1
		}
	}
	res, err := streamRun(l, size, int(buffer), *mbit*1e6/8, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "bench stream: %v\n", err)
		return 1
	}
	for i, r := range res.rx {
		fmt.Fprintf(stderr, "bench stream: receiver %d: %d bytes, %d lost in %d gaps, sha256 equal %v, done after %.2f s\n",
			i, r.bytes, r.lost, r.gaps, r.equal, r.took.Seconds())
	}
	fmt.Fprintf(stderr, "bench stream: sender %+v\n", res.tx)
	fmt.Fprintf(stdout, "stream: receivers=%d size=%s loss=%s goodput_mbps=%.0f lost_bytes=%d writer_blocked_s=%.2f\n",
		*receivers, sizeName(size), pctName(loss), res.goodput, res.lost, res.tx.FlowBlocked.Seconds())
	if res.lost > 0 {
		return 1
	}
	return 0
}

type streamRx struct {
	bytes, lost int64
	gaps        int
	equal       bool
	took        time.Duration
	err         error
}

type streamResult struct {
	rx      []streamRx
	tx      sender.Stats
	goodput float64 // Mbit/s until the last receiver read the end
	lost    int64
}

// streamRun streams size pseudo-random bytes from the lab's first host to
// the others and reads them there.
func streamRun(l *lab.Lab, size int64, buffer int, rate float64, timeout time.Duration) (streamResult, error) {
	var out streamResult
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	group := netip.MustParseAddrPort("239.255.14.1:7400")
	open := func(h *lab.Host, cfg session.Config) (*session.Session, error) {
		cfg.Group, cfg.Interface = group, lab.Iface
		var s *session.Session
		err := h.Do(func() (err error) { s, err = session.New(cfg); return err })
		return s, err
	}
	var rxs []*session.Session
	defer func() {
		for _, s := range rxs {
			c, cc := context.WithTimeout(context.Background(), time.Second)
			_ = s.Shutdown(c)
			cc()
		}
	}()
	for range l.Hosts[1:] {
		s, err := open(l.Hosts[1+len(rxs)], session.Config{})
		if err != nil {
			return out, err
		}
		rxs = append(rxs, s)
	}
	tx, err := open(l.Hosts[0], session.Config{Sender: sender.Config{Rate: rate, Parity: 16}})
	if err != nil {
		return out, err
	}
	defer func() {
		c, cc := context.WithTimeout(context.Background(), 5*time.Second)
		_ = tx.Shutdown(c)
		cc()
	}()
	want := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), want)
	out.rx = make([]streamRx, len(rxs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range rxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &out.rx[i]
			o, err := s.Accept(ctx)
			if err != nil {
				r.err = err
				return
			}
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for {
				n, err := o.Read(buf)
				h.Write(buf[:n])
				r.bytes += int64(n)
				var gap *session.GapError
				switch {
				case errors.As(err, &gap):
					r.gaps++
					r.lost += gap.Lost
					continue
				case err == io.EOF:
					r.took = time.Since(start)
					r.equal = fmt.Sprint(h.Sum(nil)) == fmt.Sprint(want.Sum(nil))
					return
				case err != nil:
					r.err = err
					return
				}
			}
		}()
	}
	st, err := tx.OpenStream(ctx, session.StreamOptions{Buffer: buffer})
	if err != nil {
		return out, err
	}
	// Plain 8 KiB writes, as io.Copy makes them, and no Flush.
	if _, err := io.CopyBuffer(struct{ io.Writer }{st}, src, make([]byte, 8<<10)); err != nil {
		return out, fmt.Errorf("writing: %w", err)
	}
	if err := st.Close(); err != nil {
		return out, err
	}
	wg.Wait()
	out.tx = tx.Stats().Sender
	var last time.Duration
	for i, r := range out.rx {
		if r.err != nil {
			return out, fmt.Errorf("receiver %d: %w", i, r.err)
		}
		if !r.equal || r.bytes != size {
			out.lost += max(size-r.bytes, 1)
		}
		last = max(last, r.took)
	}
	out.goodput = float64(size) * 8 / last.Seconds() / 1e6
	return out, nil
}
