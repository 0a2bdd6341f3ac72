package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shoalnet/shoal/session"
)

func runRecv(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("filecast recv", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c commonFlags
	c.register(fs)
	dir := fs.String("dir", "", "directory to receive into (required)")
	count := fs.Int("count", 0, "exit after this many files received intact (0: run until idle or interrupted)")
	idle := fs.Duration("idle-timeout", 0, "exit when no file has arrived for this long (0: never)")
	silent := fs.Bool("silent", false, "send no feedback at all (one-way links; rely on the sender's --auto-parity and --repeat)")
	rxLoss := fs.String("rx-loss", "0", "drop this share of received packets (seeded), e.g. 1%")
	tolerate := fs.Bool("tolerate-loss", false, "with a --cc sender: count a lost packet as congestion only if another is lost within the round trip (random loss on a radio link)")
	linger := fs.Duration("linger", 5*time.Second, "with --count: after the last file, stay this long (or until the sender ends) to answer its acknowledgement requests")
	if err := fs.Parse(args); err != nil {
		return 2
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
	cfg.Logger, cfg.FileSink, cfg.RxLoss = log, st.sink, session.Loss{Rate: loss}
	cfg.Receiver.Silent = *silent
	cfg.Receiver.TolerateLoss = *tolerate
	s, err := session.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "filecast recv: %v\n", err)
		return 1
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.Close(ctx)
	}()
	return receiveLoop(s, st, *count, *idle, *linger, c.json, stdout)
}

// finishers bounds the files verified and moved into place at once: enough
// to overlap their disk work, few enough that the loop that reports them
// keeps its share of two busy cores.
const finishers = 4

// receiveLoop reports every file as it completes, until count files, or
// until nothing has happened for idle.
//
// Accepting never waits for anything else: a goroutine takes each object
// from the session as it starts and hands it to a goroutine of its own
// that waits for it to complete, so that files finish in the order they
// complete, not the order they started; at most finishers of them are
// verified and renamed at once.
func receiveLoop(s *session.Session, st *store, count int, idle, linger time.Duration, asJSON bool, stdout io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	results := make(chan result, 256)
	started := make(chan struct{}, 1) // an object started: not idle
	closed := make(chan struct{})     // the session closed; no more objects
	go func() {
		defer close(closed)
		slots := make(chan struct{}, finishers)
		for {
			o, err := s.Accept(ctx)
			if err != nil {
				return
			}
			select {
			case started <- struct{}{}:
			default:
			}
			if o.Info().Kind != session.KindFile {
				continue // filecast moves files; other objects are not ours
			}
			go func() {
				select {
				case <-o.Done():
				case <-ctx.Done():
					return
				}
				select {
				case slots <- struct{}{}:
				case <-ctx.Done():
					return
				}
				r := st.finish(o.Info(), o.Wait(ctx))
				<-slots
				select {
				case results <- r:
				case <-ctx.Done():
				}
			}()
		}
	}()
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
	senderGone := false
	for count == 0 || got < count {
		select {
		case <-closed:
			return exitFor(len(failedNames))
		case <-started:
			active()
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
			return exitFor(len(failedNames))
		case ev := <-s.Events():
			if _, ok := ev.(session.SenderGone); ok {
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
