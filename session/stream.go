package session

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/shoalnet/shoal/sender"
)

// StreamOptions configure a stream this session sends.
type StreamOptions struct {
	// Buffer is the stream's ring buffer in bytes: how much data may be
	// sent and not yet confirmed by the receivers (and so how much recent
	// data it can repair). 0 means 4 MiB.
	Buffer int
	// Flush is what Stream.Flush does at a message end. The zero value is
	// FlushPassive.
	Flush FlushMode
	// Info is sent as the stream's NORM_INFO.
	Info []byte
	// MaxAge, if positive, makes the stream deadline-bounded (live media):
	// data older than this is neither sent late nor repaired, receivers
	// asking for it are moved past it, and the writer never waits for
	// receivers, only for the send rate (see sender.SetStreamMaxAge).
	// Receivers set their own budget with Object.SetMaxAge.
	MaxAge time.Duration
	// BlockTime, if positive, closes each FEC block after this long even
	// if it is not full, so its proactive parity (sender.Config.AutoParity)
	// goes out at once: FEC repair within BlockTime instead of the time a
	// block takes to fill (see sender.SetStreamBlockTime). Shoal receivers
	// only.
	BlockTime time.Duration
}

// FlushMode says what Stream.Flush does at the end of a message.
type FlushMode uint8

// Flush modes. The zero value, FlushPassive, is the default.
const (
	// FlushPassive sends the message's partial last segment at once, so
	// that receivers get the message without waiting for more data.
	FlushPassive FlushMode = iota
	// FlushActive also sends NORM_CMD(FLUSH), prompting receivers to NACK
	// what they lost of the message at once, for low-latency repair.
	FlushActive
	// FlushNone sends data only in full segments: best throughput, but a
	// message's end waits for the next message to fill its segment.
	FlushNone
)

// engine is the sender engine's flush mode.
func (m FlushMode) engine() sender.FlushMode {
	switch m {
	case FlushActive:
		return sender.FlushActive
	case FlushNone:
		return sender.FlushNone
	}
	return sender.FlushPassive
}

// Stream is a stream this session sends: an io.WriteCloser whose Flush
// marks the end of a message. Write, Flush and Close block while the
// stream's buffer (or the transmit cache) is full; the Context forms and
// SetWriteDeadline bound how long.
type Stream struct {
	s  *Session
	id uint16

	mu sync.Mutex
	dl time.Time // SetWriteDeadline
}

// OpenStream starts a stream object.
func (s *Session) OpenStream(ctx context.Context, opt StreamOptions) (*Stream, error) {
	if opt.Buffer == 0 {
		opt.Buffer = 4 << 20
	}
	if opt.Flush > FlushNone {
		return nil, fmt.Errorf("%w: unknown flush mode %d", ErrConfig, opt.Flush)
	}
	id, err := s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) {
		id, err := tx.OpenStream(opt.Buffer, opt.Info, opt.Flush.engine())
		if err == nil && opt.MaxAge > 0 {
			err = tx.SetStreamMaxAge(id, opt.MaxAge)
		}
		if err == nil && opt.BlockTime > 0 {
			err = tx.SetStreamBlockTime(id, opt.BlockTime)
		}
		return id, err
	})
	if err != nil {
		return nil, err
	}
	return &Stream{s: s, id: uint16(id)}, nil
}

// ID returns the stream's object id.
func (st *Stream) ID() ObjectID { return ObjectID(st.id) }

// SetWriteDeadline bounds the Write, Flush and Close calls made after it,
// as net.Conn does: past t they return an error matching
// os.ErrDeadlineExceeded (a Write having written part of its data). The
// zero time means no deadline.
func (st *Stream) SetWriteDeadline(t time.Time) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dl = t
	return nil
}

// bound applies the write deadline to ctx.
func (st *Stream) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	st.mu.Lock()
	dl := st.dl
	st.mu.Unlock()
	if dl.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadlineCause(ctx, dl, os.ErrDeadlineExceeded)
}

// Write writes p to the stream, blocking while the ring buffer is full of
// data not yet sent or not yet confirmed by the receivers the sender knows
// (see sender.Config.StreamTimeout and StreamPartial).
func (st *Stream) Write(p []byte) (int, error) { return st.WriteContext(context.Background(), p) }

// WriteContext is Write with a context.
func (st *Stream) WriteContext(ctx context.Context, p []byte) (int, error) {
	ctx, cancel := st.bound(ctx)
	defer cancel()
	return st.write(ctx, p, false)
}

// Flush ends the current message: the next write starts a new one, and
// the stream's flush mode applies.
func (st *Stream) Flush() error { return st.FlushContext(context.Background()) }

// FlushContext is Flush with a context.
func (st *Stream) FlushContext(ctx context.Context) error {
	ctx, cancel := st.bound(ctx)
	defer cancel()
	_, err := st.write(ctx, nil, true)
	return err
}

func (st *Stream) write(ctx context.Context, p []byte, eom bool) (int, error) {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for {
		if s.tx == nil || s.stopNow {
			return total, s.closedErr()
		}
		n, err := s.tx.WriteStream(st.id, p[total:], eom)
		total += n
		if err != nil {
			return total, err
		}
		if n > 0 || total == len(p) {
			s.kickLocked() // what was written goes out now
		}
		if total == len(p) {
			return total, nil
		}
		if n > 0 {
			s.kickLocked() // the loop sends it while we wait
		}
		// Whatever was written counts as part of this message: the
		// message end is marked with the rest.
		if err := s.wait(ctx); err != nil {
			return total, err
		}
	}
}

// Close sends what the stream holds and ends it; receivers read io.EOF.
func (st *Stream) Close() error { return st.CloseContext(context.Background()) }

// CloseContext is Close with a context: it waits for room in the
// transmit cache until ctx ends.
func (st *Stream) CloseContext(ctx context.Context) error {
	ctx, cancel := st.bound(ctx)
	defer cancel()
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.tx == nil || s.stopNow {
			return s.closedErr()
		}
		err := s.tx.CloseStream(st.id)
		if !errors.Is(err, sender.ErrCacheFull) {
			s.kickLocked()
			return err
		}
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
}
