package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// proc is a program bench filecast runs inside a lab host. Its output
// (stdout and stderr together) is read as it is written, so that the line
// saying a file is complete is timestamped when it appears, not when the
// program exits.
type proc struct {
	name string
	cmd  *exec.Cmd

	mark     chan time.Time // when the first line match accepted appeared
	markLine string         // that line; read it after receiving from mark
	readDone chan struct{}  // closed when the output has ended
	exited   chan struct{}  // closed when the program has exited
	exitAt   time.Time      // valid once exited is closed
	state    *os.ProcessState

	mu     sync.Mutex
	marked bool
	tail   []string // the last lines of output, for error messages
}

const procTail = 12

// startProc runs prog with args in network namespace ns. matchOut and
// matchErr, if not nil, pick the line of its stdout or stderr whose
// appearance is the moment to time.
func startProc(name, ns string, matchOut, matchErr func(string) bool, prog string, args ...string) (*proc, error) {
	var pipes [2][2]*os.File // stdout, stderr: read end, write end
	closeAll := func() {
		for _, pp := range pipes {
			for _, f := range pp {
				if f != nil {
					f.Close()
				}
			}
		}
	}
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		pipes[i] = [2]*os.File{r, w}
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, prog}, args...)...)
	cmd.Stdout, cmd.Stderr = pipes[0][1], pipes[1][1]
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	pipes[0][1].Close() // the child holds its own copies
	pipes[1][1].Close()
	p := &proc{name: name, cmd: cmd, mark: make(chan time.Time, 1), readDone: make(chan struct{}), exited: make(chan struct{})}
	live.add(p)
	var reading sync.WaitGroup
	for i, match := range []func(string) bool{matchOut, matchErr} {
		r := pipes[i][0]
		reading.Go(func() {
			defer r.Close()
			p.read(r, match)
		})
	}
	go func() {
		reading.Wait()
		close(p.readDone)
	}()
	go func() {
		_ = cmd.Wait()
		p.exitAt, p.state = time.Now(), cmd.ProcessState
		live.remove(p)
		close(p.exited)
	}()
	return p, nil
}

// procSet is the programs that run, for an interrupt to kill.
type procSet struct {
	mu sync.Mutex
	m  map[*proc]struct{}
}

var live procSet

func (s *procSet) add(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[*proc]struct{}{}
	}
	s.m[p] = struct{}{}
}

func (s *procSet) remove(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, p)
}

// killAll kills every program still running.
func (s *procSet) killAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := range s.m {
		killProc(p.cmd)
	}
}

// read takes lines from one of the program's outputs until it ends.
func (p *proc) read(r io.Reader, match func(string) bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t := time.Now()
		line := sc.Text()
		p.mu.Lock()
		if !p.marked && match != nil && match(line) {
			p.marked = true
			p.markLine = line
			p.mark <- t
		}
		p.tail = append(p.tail, line)
		if len(p.tail) > procTail {
			p.tail = p.tail[len(p.tail)-procTail:]
		}
		p.mu.Unlock()
	}
}

// output returns the last lines the program wrote.
func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// stop kills the program if it still runs and waits until it has exited.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	killProc(p.cmd)
	<-p.exited
}

// waitExit waits until the program exits or the deadline passes.
func (p *proc) waitExit(deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-p.exited:
		return true
	case <-t.C:
		return false
	}
}

// cpu is the user+system CPU seconds of an exited program.
func (p *proc) cpu() float64 {
	if p.state == nil {
		return 0
	}
	return (p.state.UserTime() + p.state.SystemTime()).Seconds()
}

var errTimeout = errors.New("timed out")

// waitMarks waits until every one of ps has printed its matching line and
// returns when the last did, with the lines; or an error naming the first
// that ended without it, or errTimeout at the deadline.
func waitMarks(ps []*proc, deadline time.Time) (time.Time, []string, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	var last time.Time
	lines := make([]string, len(ps))
	for i, p := range ps {
		select {
		case m := <-p.mark:
			last, lines[i] = later(last, m), p.markLine
			continue
		case <-p.readDone:
		case <-t.C:
			return last, lines, fmt.Errorf("%s %d: %w; its last output:\n%s", p.name, i, errTimeout, p.output())
		}
		// The output ended; the line may have been its last.
		select {
		case m := <-p.mark:
			last, lines[i] = later(last, m), p.markLine
		default:
			<-p.exited
			return last, lines, fmt.Errorf("%s %d ended (%v) without completing; its last output:\n%s", p.name, i, p.state, p.output())
		}
	}
	return last, lines, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
