package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shoalnet/shoal/session"
)

func runRecv(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("filecast recv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c commonFlags
	c.register(fs)
	dir := fs.String("dir", "", "directory to receive into (required)")
	count := fs.Int("count", 0, "exit after this many files received intact (0: run until idle or interrupted); exit status 1 if the receiver stops with fewer")
	idle := fs.Duration("idle-timeout", 0, "exit when no file has arrived for this long (0: never)")
	silent := fs.Bool("silent", false, "send no feedback at all (one-way links; rely on the sender's --auto-parity and --repeat)")
	rxLoss := fs.String("rx-loss", "0", "drop this share of received packets (seeded), e.g. 1%")
	tolerate := fs.Bool("tolerate-loss", false, "with a --cc sender: count a lost packet as congestion only if another is lost within the round trip (random loss on a radio link)")
	linger := fs.Duration("linger", 5*time.Second, "with --count: after the last file, stay this long (or until the sender ends) to answer its acknowledgement requests")
	coalesce := fs.Duration("read-coalesce", 500*time.Microsecond, "let packets gather in the socket this long between reads while data flows: fewer wake-ups, less CPU (0: read at once)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the receiver to this file (default: $FILECAST_CPUPROFILE.PID if that is set)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cpuProfile == "" {
		// The environment reaches receivers that another program starts
		// (bench filecast), one profile per process.
		if p := os.Getenv("FILECAST_CPUPROFILE"); p != "" {
			*cpuProfile = fmt.Sprintf("%s.%d", p, os.Getpid())
		}
	}
	if *cpuProfile != "" {
		stopProfile, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "filecast recv: %v\n", err)
			return 1
		}
		defer stopProfile()
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "filecast recv: --dir is required")
		return 2
	}
	zl, log, err := newLogger(c.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "filecast recv: %v\n", err)
		return 2
	}
	defer zl.Sync()
	loss, err := parsePct(*rxLoss)
	if err != nil {
		fmt.Fprintf(stderr, "filecast recv: %v\n", err)
		return 2
	}
	st, err := newStore(*dir)
	if err != nil {
		fmt.Fprintf(stderr, "filecast recv: %v\n", err)
		return 1
	}
	cfg, err := c.config()
	if err != nil {
		fmt.Fprintf(stderr, "filecast recv: %v\n", err)
		return 2
	}
	cfg.Logger, cfg.FileSink = log, st.sink
	if loss > 0 {
		pc, err := session.Listen(cfg)
		if err != nil {
			fmt.Fprintf(stderr, "filecast recv: %v\n", err)
			return 1
		}
		cfg.Conn = session.NewLossConn(pc, session.Loss{}, session.Loss{Rate: loss}, cfg.Seed)
	}
	cfg.Tracer = debugTracer(c.logLevel, log)
	cfg.ReadCoalesce = *coalesce
	cfg.Receiver.Silent = *silent
	cfg.Receiver.TolerateLoss = *tolerate
	// Interrupted or terminated, the receiver still closes its session and
	// removes what it had only half received.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := session.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "filecast recv: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "filecast recv: node id %s (name it in a sender's --ack list; --node sets it)\n", nodeName(uint32(s.NodeID())))
	watchCtx, endWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		watchAuth(watchCtx, s.SecurityStats, cfg.Security != nil, stderr, 100*time.Millisecond, refusalReport)
	}()
	status := receiveLoop(ctx, s, st, *count, *idle, *linger, c.json, stdout, stderr)
	endWatch()
	<-watched
	if msg, bad := refusedOnly(s.SecurityStats(), cfg.Security != nil); bad {
		// Heard only packets it could not authenticate: that is a failure
		// even when --count and --idle-timeout would call it a normal end.
		fmt.Fprintf(stderr, "filecast recv: nothing authenticated: %s\n", msg)
		status = 1
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.Shutdown(closeCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "filecast recv: session: %v\n", err)
		status = 1
	}
	st.cleanup()
	return status
}

// receiveLoop reports every file as it completes, until count files, until
// nothing has happened for idle, or until ctx ends. It returns the exit
// status: 1 if fewer than count files arrived intact, if a file failed and
// no later copy made good, or if the session ended by itself.
func receiveLoop(ctx context.Context, s *session.Session, st *store, count int, idle, linger time.Duration, asJSON bool, stdout, stderr io.Writer) int {
	objs := make(chan *session.Object)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			o, err := s.Accept(context.Background())
			if err != nil {
				close(objs)
				return
			}
			select {
			case objs <- o:
			case <-stop:
				return
			}
		}
	}()
	results := make(chan result, 64)
	var idleC <-chan time.Time
	var timer *time.Timer
	if idle > 0 {
		timer = time.NewTimer(idle)
		defer timer.Stop()
		idleC = timer.C
	}
	active := func() {
		if timer != nil {
			timer.Reset(idle)
		}
	}
	seen := map[string]bool{}        // name+digest already received: --repeat copies
	failedNames := map[string]bool{} // failures not made good by a later copy
	got := 0
	short := func(why string) int {
		if count > 0 && got < count {
			fmt.Fprintf(stderr, "filecast recv: %s with %d of %d files received\n", why, got, count)
			return 1
		}
		return exitFor(len(failedNames))
	}
	sessionEnded := func() int {
		fmt.Fprintf(stderr, "filecast recv: the session ended with %d files received\n", got)
		return 1
	}
	senderGone := false
	for count == 0 || got < count {
		select {
		case o, ok := <-objs:
			if !ok {
				return sessionEnded()
			}
			active()
			if o.Info().Kind != session.KindFile {
				continue // filecast moves files; other objects are not ours
			}
			st.finishing.Go(func() {
				err := o.Wait(context.Background())
				r := st.finish(o.Info(), err)
				select {
				case results <- r:
				case <-stop:
				}
			})
		case r := <-results:
			active()
			key := r.Name + "/" + r.SHA256
			if r.OK && seen[key] {
				continue
			}
			seen[key] = r.OK
			report(r, asJSON, stdout)
			if r.OK {
				got++
				delete(failedNames, r.Name)
			} else {
				failedNames[r.Name] = true
			}
		case <-idleC:
			return short(fmt.Sprintf("no file arrived for %v", idle))
		case <-ctx.Done():
			return short("interrupted")
		case ev, ok := <-s.Events():
			if !ok {
				return sessionEnded()
			}
			if _, gone := ev.(session.SenderGone); gone {
				senderGone = true
			}
		}
	}
	// The sender may still ask for acknowledgement of what we hold: answer
	// until it ends its session, or for linger.
	if !senderGone && linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		for !senderGone {
			select {
			case ev, ok := <-s.Events():
				if !ok {
					senderGone = true
				} else if _, gone := ev.(session.SenderGone); gone {
					senderGone = true
				}
			case <-t.C:
				senderGone = true
			case <-ctx.Done():
				senderGone = true
			}
		}
	}
	return exitFor(len(failedNames))
}

func exitFor(failed int) int {
	if failed > 0 {
		return 1
	}
	return 0
}

func report(r result, asJSON bool, stdout io.Writer) {
	switch {
	case asJSON:
		_ = json.NewEncoder(stdout).Encode(r)
	case r.OK && r.Verified:
		fmt.Fprintf(stdout, "filecast: received %s %d bytes sha256=%s ok\n", r.Path, r.Bytes, r.SHA256)
	case r.OK:
		fmt.Fprintf(stdout, "filecast: received %s %d bytes sha256=%s ok (sender sent no digest)\n", r.Path, r.Bytes, r.SHA256)
	default:
		fmt.Fprintf(stdout, "filecast: FAILED %q from %s: %s\n", r.Name, r.Sender, r.Err)
	}
}
