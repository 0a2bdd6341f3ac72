package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// Message mode. A stream written with WriteMessage carries whole messages,
// framed inside the stream (see framing.MsgHeader: a 32-bit sequence
// number and a 32-bit length before each message); ReadMessage on the
// receiving side returns them one by one, whole, in order, whatever the
// flush mode, several to a segment or one over many. A message that a gap
// cut is never returned in part: ReadMessage reports how many messages
// were lost (a *MessagesLostError) and goes on at the next whole one. A
// receiver that joins late, or resumes after a gap, starts at the next
// message start. Both ends must agree to use message mode, as with any
// framing: Read on a message stream returns the framed bytes.

// MessagesLostError is what ReadMessage returns, in order, where whole
// messages were lost for good (cut by a gap, too old to be repaired, or
// sent before this receiver joined): Lost of them, none delivered even in
// part. errors.Is(err, ErrDataLost) is true; reading goes on after it.
type MessagesLostError struct {
	Lost uint32
}

func (e *MessagesLostError) Error() string {
	return fmt.Sprintf("session: %d stream messages lost", e.Lost)
}

// Is makes a MessagesLostError match ErrDataLost.
func (e *MessagesLostError) Is(target error) bool { return target == ErrDataLost }

// WriteMessage writes msg to the stream as one whole message (message
// mode, see ReadMessage), blocking while the stream's buffer has no room
// for all of it, and returns sender.ErrMessageTooLarge for a message the
// buffer could never hold. A stream written with WriteMessage should not
// also be written with Write. On a stream with a MaxAge the buffer frees
// itself as data ages, so the writer waits at most until its oldest data
// is too old to repair.
func (st *Stream) WriteMessage(ctx context.Context, msg []byte) error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.tx == nil || s.stopNow {
			return ErrClosed
		}
		err := s.tx.WriteMessage(st.id, msg)
		if !errors.Is(err, sender.ErrCacheFull) {
			s.kickLocked()
			return err
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
}

// msgMarkEvery is how far apart, at most, the message starts a received
// stream remembers are: a reader that finds the framing broken resumes
// within this many bytes.
const msgMarkEvery = 64 << 10

// msgMark notes, before stream data arrives, where in it a message starts
// (msgStart, -1 if none), when ReadMessage may need it: after a gap, at
// the start, and every msgMarkEvery bytes.
func (o *Object) msgMark(msgStart int) {
	if msgStart < 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	for len(o.starts) > 0 && o.starts[0] < o.read {
		o.starts = o.starts[1:]
	}
	at := o.written + int64(msgStart)
	n := len(o.starts)
	if n == 0 || at-o.starts[n-1] >= msgMarkEvery || (len(o.gaps) > 0 && o.gaps[len(o.gaps)-1].at > o.starts[n-1]) {
		o.starts = append(o.starts, at)
	}
}

// ReadMessage returns the next whole message of a stream written in
// message mode (Stream.WriteMessage). Where messages were lost it first
// returns a *MessagesLostError saying how many, then the message after
// them (or, for messages lost at the very end, io.EOF: the sender's
// end of messages says how many it wrote); io.EOF after the sender closed
// the stream. Messages larger than
// 16 MiB are taken as broken framing and skipped. Do not mix ReadMessage
// and Read on one stream.
func (o *Object) ReadMessage(ctx context.Context) ([]byte, error) {
	for {
		o.mu.Lock()
		if o.info.Kind != KindStream {
			o.mu.Unlock()
			return nil, fmt.Errorf("session: ReadMessage on a %v object", o.info.Kind)
		}
		if o.pendingMsg != nil {
			m := *o.pendingMsg
			o.pendingMsg = nil
			o.mu.Unlock()
			return m, nil
		}
		if o.mr == nil {
			o.mr = receiver.NewMessageReader(0)
		}
		msg, lost, ok := o.parseLocked()
		release := o.holding && len(o.buf) < streamHoldBytes/2
		if release {
			o.holding = false
		}
		var ch chan struct{}
		var err error
		if !ok {
			select {
			case <-o.done:
				err = o.err
				if err == nil {
					err = io.EOF
				}
			default:
				ch = o.notify
			}
		}
		o.mu.Unlock()
		if release {
			o.s.holdStream(o, false)
		}
		switch {
		case ok && lost > 0:
			o.mu.Lock()
			if msg != nil {
				o.pendingMsg = &msg
			}
			o.mu.Unlock()
			return nil, &MessagesLostError{Lost: lost}
		case ok:
			return msg, nil
		case err != nil:
			return nil, err
		}
		select {
		case <-ch:
		case <-o.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// parseLocked feeds the buffered stream data to the message reader until
// a message completes (ok) or the buffer is empty, consuming what it took.
// With ok, a nil msg is the end of messages reporting lost ones.
func (o *Object) parseLocked() (msg []byte, lost uint32, ok bool) {
	for {
		if len(o.gaps) > 0 && o.gaps[0].at == o.read {
			o.gaps = o.gaps[1:]
			o.mr.Gap()
			continue
		}
		b := o.buf
		if len(o.gaps) > 0 {
			b = b[:o.gaps[0].at-o.read]
		}
		if len(b) == 0 {
			return nil, 0, false
		}
		for len(o.starts) > 0 && o.starts[0] < o.read {
			o.starts = o.starts[1:]
		}
		start := -1
		if len(o.starts) > 0 && o.starts[0]-o.read < int64(len(b)) {
			// Feed up to the mark after it, so each piece has at most one.
			start = int(o.starts[0] - o.read)
			if len(o.starts) > 1 && o.starts[1]-o.read < int64(len(b)) {
				b = b[:o.starts[1]-o.read]
			}
		} else if len(o.starts) > 0 {
			b = b[:min(int64(len(b)), o.starts[0]-o.read)]
		}
		n, m, done := o.mr.Feed(b, start)
		o.buf = o.buf[n:]
		o.read += int64(n)
		switch {
		case done && m.End && m.Lost > 0:
			// Messages lost at the very end: reported, with no message
			// after them.
			return nil, m.Lost, true
		case done && !m.End:
			return append([]byte{}, m.Data...), m.Lost, true
		}
	}
}

// SetMaxAge sets how long this receiver keeps asking for a stream's
// missing data: what is still missing maxAge after it was found missing
// is given up, and the data after it is delivered at once, the loss
// reported as a gap (ReadMessage: a *MessagesLostError). Set it to the
// playout budget of live media; 0 (the default) asks for as long as the
// sender holds the data.
func (o *Object) SetMaxAge(maxAge time.Duration) {
	s := o.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopNow || s.rx == nil {
		return
	}
	s.rx.SetStreamMaxAge(time.Now(), uint32(o.info.Sender), uint16(o.info.ID), maxAge)
	s.kickLocked()
}
