package simrun

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// Stream describes a stream the sender writes: Messages messages of random
// length up to MaxLen, written as fast as the ring takes them.
type Stream struct {
	Messages int
	MaxLen   int
	Mode     sender.FlushMode
	Buffer   int // ring size in bytes; 0 means 1 MiB

	// Framed writes each message whole in message mode
	// (sender.WriteMessage), and receivers check what a
	// receiver.MessageReader makes of the stream: every message whole, in
	// order, and every one not delivered counted as lost.
	Framed bool
	// Interval paces a framed stream as a media source: message i is
	// written at i*Interval from the start (0: as fast as the ring takes
	// them).
	Interval time.Duration
	// MaxAge makes the stream deadline-bounded (sender.SetStreamMaxAge).
	MaxAge time.Duration
	// BlockTime closes FEC blocks on time (sender.SetStreamBlockTime).
	BlockTime time.Duration
	// Len, if positive, makes every message this long (MaxLen is then
	// ignored); Burst, if above 1, writes messages in groups of Burst at
	// each Interval (a video frame's packets).
	Len, Burst int
}

type streamTx struct {
	msgs    [][]byte
	all     []byte // the messages back to back
	offsets []int  // where each message starts in all
	id      uint16
	open    bool
	msg     int // message being written
	off     int // bytes of it written
	closed  bool

	framed   bool
	now      time.Time // set by the sender endpoint before each write
	start    time.Time
	writeAt  time.Time // when the next paced message is due (zero: now)
	lateness time.Duration

	rxDelivered, rxLost int // framed messages over the receivers that finished
	writtenAt           []time.Time
	maxDelay            time.Duration // the longest from writing a message to its delivery
	delays              []uint64      // messages delivered, by delay in ms (the last: longer)
}

// due is when paced message i is to be written.
func (st *streamTx) due(sc *Scenario, i int) time.Time {
	if b := sc.Stream.Burst; b > 1 {
		i /= b
	}
	return st.start.Add(time.Duration(i) * sc.Stream.Interval)
}

func newStreamTx(sc *Scenario) *streamTx {
	rng := rand.New(rand.NewPCG(sc.Seed, 77))
	st := &streamTx{framed: sc.Stream.Framed}
	for i := range sc.Stream.Messages {
		n := sc.Stream.Len
		if n <= 0 {
			n = 1 + rng.IntN(sc.Stream.MaxLen)
		}
		m := make([]byte, n)
		fillPattern(m, sc.Seed, 1000+i, 0)
		st.msgs = append(st.msgs, m)
		st.offsets = append(st.offsets, len(st.all))
		st.all = append(st.all, m...)
	}
	return st
}

// write feeds the stream as far as the sender takes it.
func (st *streamTx) write(s *sender.Sender, sc *Scenario) error {
	if !st.open {
		buf := sc.Stream.Buffer
		if buf == 0 {
			buf = 1 << 20
		}
		id, err := s.OpenStream(buf, []byte("stream"), sc.Stream.Mode)
		if errors.Is(err, sender.ErrCacheFull) {
			return nil
		}
		if err != nil {
			return err
		}
		st.id, st.open = id, true
		if sc.Stream.MaxAge > 0 {
			if err := s.SetStreamMaxAge(id, sc.Stream.MaxAge); err != nil {
				return err
			}
		}
		if err := s.SetStreamBlockTime(id, sc.Stream.BlockTime); err != nil {
			return err
		}
	}
	if st.framed {
		return st.writeFramed(s, sc)
	}
	for st.msg < len(st.msgs) {
		m := st.msgs[st.msg]
		n, err := s.WriteStream(st.id, m[st.off:], true)
		if err != nil {
			return err
		}
		st.off += n
		if st.off < len(m) {
			return nil // ring full: more after the next poll
		}
		st.msg, st.off = st.msg+1, 0
	}
	return st.close(s)
}

// close ends the stream once everything is written; a full cache makes it
// try again at the next poll.
func (st *streamTx) close(s *sender.Sender) error {
	if st.closed {
		return nil
	}
	switch err := s.CloseStream(st.id); {
	case errors.Is(err, sender.ErrCacheFull):
		return nil
	case err != nil:
		return err
	}
	st.closed = true
	return nil
}

// writeFramed writes whole messages, each when it is due.
func (st *streamTx) writeFramed(s *sender.Sender, sc *Scenario) error {
	st.writeAt = time.Time{}
	if sc.Stream.Interval > 0 && st.start.IsZero() {
		if st.now.IsZero() {
			return nil // set up before the run: start at the first poll
		}
		st.start = st.now
	}
	for st.msg < len(st.msgs) {
		if sc.Stream.Interval > 0 {
			due := st.due(sc, st.msg)
			if st.now.Before(due) {
				st.writeAt = due
				return nil
			}
		}
		switch err := s.WriteMessage(st.id, st.msgs[st.msg]); {
		case errors.Is(err, sender.ErrCacheFull):
			return nil
		case err != nil:
			return err
		}
		if sc.Stream.Interval > 0 {
			due := st.due(sc, st.msg)
			st.lateness = max(st.lateness, st.now.Sub(due))
		}
		st.writtenAt = append(st.writtenAt, st.now)
		st.msg++
	}
	return st.close(s)
}

// streamRx checks what a receiver delivers of the stream: the bytes, in
// order, against the concatenated messages, and every message start it
// reports against the true boundaries. After a reported gap it resumes at
// whichever message the data matches.
type streamRx struct {
	pos    int // offset in the concatenated messages
	msg    int // index of the message pos is in (or starts)
	starts int
	gaps   int
	resync bool
	began  bool
	err    error

	// Framed streams.
	mr        *receiver.MessageReader
	next      uint32 // the message expected next
	delivered int
	lost      int
	ended     bool      // the end of messages came
	now       time.Time // set by the receiver endpoint before its events
}

func (r *streamRx) fail(format string, a ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, a...)
	}
}

func (r *streamRx) data(st *streamTx, ev receiver.Event) {
	if r.err != nil {
		return
	}
	d := ev.Data
	if st.framed {
		r.message(st, d, ev.MsgStart)
		return
	}
	if !r.began || r.resync {
		// Delivery starts (or resumes) at a message start, where the gap
		// events said: r.pos. (Finding it by the data alone matched a
		// resumption with one byte left in its segment to a wrong
		// message.)
		if ev.MsgStart != 0 {
			r.fail("stream data resumes without a message start")
			return
		}
		j, ok := slices.BinarySearch(st.offsets, r.pos)
		if !ok {
			r.fail("stream data resumes at offset %d, which is not a message start", r.pos)
			return
		}
		r.msg, r.began, r.resync = j, true, false
	}
	if r.pos+len(d) > len(st.all) || !bytes.Equal(d, st.all[r.pos:r.pos+len(d)]) {
		r.fail("stream bytes at offset %d differ", r.pos)
		return
	}
	if ev.MsgStart >= 0 {
		at := r.pos + ev.MsgStart
		for r.msg < len(st.offsets) && st.offsets[r.msg] < at {
			r.msg++
		}
		if r.msg == len(st.offsets) || st.offsets[r.msg] != at {
			r.fail("message start reported at offset %d, which is inside a message", at)
			return
		}
		r.starts++
	}
	r.pos += len(d)
}

// gap notes a stream gap of lost bytes (EventStreamGap.Lost): delivery
// resumes that far on.
func (r *streamRx) gap(lost int64) {
	r.gaps++
	r.pos += int(lost)
	r.resync = true
	if r.mr != nil {
		r.mr.Gap()
	}
}

// message feeds a framed stream's data to the message reader and checks
// each message it returns against the one written.
func (r *streamRx) message(st *streamTx, d []byte, msgStart int) {
	if r.mr == nil {
		r.mr = receiver.NewMessageReader(0)
	}
	for len(d) > 0 {
		n, m, ok := r.mr.Feed(d, msgStart)
		d = d[n:]
		if msgStart >= n {
			msgStart -= n
		} else {
			msgStart = -1
		}
		if !ok {
			continue
		}
		if m.End {
			// The sender's end of messages: its count of messages.
			r.ended = true
			if int(m.Seq) != len(st.msgs) || m.Seq != r.next+m.Lost {
				r.fail("end of messages at %d after message %d with %d lost; %d written", m.Seq, int(r.next)-1, m.Lost, len(st.msgs))
			}
			r.lost += int(m.Lost)
			r.next = m.Seq
			continue
		}
		switch {
		case m.Seq != r.next+m.Lost:
			r.fail("message %d after message %d with %d lost", m.Seq, int(r.next)-1, m.Lost)
		case int(m.Seq) >= len(st.msgs) || !bytes.Equal(m.Data, st.msgs[m.Seq]):
			r.fail("message %d differs from the one written", m.Seq)
		case m.Lost > 0 && r.gaps == 0:
			r.fail("%d messages lost before message %d with no gap reported", m.Lost, m.Seq)
		}
		if int(m.Seq) < len(st.writtenAt) {
			d := r.now.Sub(st.writtenAt[m.Seq])
			st.maxDelay = max(st.maxDelay, d)
			if st.delays == nil {
				st.delays = make([]uint64, 10001)
			}
			st.delays[min(int(d/time.Millisecond), len(st.delays)-1)]++
		}
		r.next = m.Seq + 1
		r.delivered++
		r.lost += int(m.Lost)
	}
	if r.mr.FramingErrors() > 0 {
		r.fail("%d framing errors", r.mr.FramingErrors())
	}
}

func (r *streamRx) end(st *streamTx, mode sender.FlushMode) {
	switch {
	case st.framed && r.err == nil && !r.ended && r.gaps == 0:
		r.fail("stream ended with no end of messages and no gap")
	case st.framed && r.err == nil && !r.ended:
		// The end of messages itself was lost (given up): count what
		// it would have reported.
		r.lost += len(st.msgs) - int(r.next)
	}
	st.rxDelivered += r.delivered
	st.rxLost += r.lost
	switch {
	case r.err != nil:
	case st.framed && r.gaps == 0 && (r.delivered != len(st.msgs) || r.lost != 0):
		r.fail("%d of %d messages delivered, %d lost, with no gap", r.delivered, len(st.msgs), r.lost)
	case st.framed:
	case r.gaps == 0 && r.pos != len(st.all):
		r.fail("stream ended after %d of %d bytes", r.pos, len(st.all))
	case r.gaps == 0 && mode != sender.FlushNone && r.starts != len(st.msgs):
		// With flushing, every message starts a segment, so every start
		// must be reported.
		r.fail("%d message starts reported, %d messages sent", r.starts, len(st.msgs))
	}
}
