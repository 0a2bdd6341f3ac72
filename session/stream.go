package session

import (
	"context"
	"errors"
	"time"

	"github.com/shoalnet/shoal/sender"
)

// StreamOptions configure a stream this session sends.
type StreamOptions struct {
	// Buffer is the stream's ring buffer in bytes: how much data may be
	// sent and not yet confirmed by the receivers (and so how much recent
	// data it can repair). 0 means 4 MiB.
	Buffer int
	// Flush is what Flush does at a message end: sender.FlushPassive (the
	// default) sends the partial segment at once, sender.FlushActive also
	// prompts receivers to NACK, sender.FlushNone waits for a full segment.
	Flush sender.FlushMode
	// FlushSet must be true for Flush's zero value (FlushNone) to count.
	FlushSet bool
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

// Stream is a stream this session sends: an io.WriteCloser whose Flush
// marks the end of a message.
type Stream struct {
	s  *Session
	id uint16
}

// OpenStream starts a stream object.
func (s *Session) OpenStream(ctx context.Context, opt StreamOptions) (*Stream, error) {
	if opt.Buffer == 0 {
		opt.Buffer = 4 << 20
	}
	if !opt.FlushSet && opt.Flush == sender.FlushNone {
		opt.Flush = sender.FlushPassive
	}
	id, err := s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) {
		id, err := tx.OpenStream(opt.Buffer, opt.Info, opt.Flush)
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
	return &Stream{s: s, id: id}, nil
}

// ID returns the stream's object id.
func (st *Stream) ID() uint16 { return st.id }

// Write writes p to the stream, blocking while the ring buffer is full of
// data not yet sent or not yet confirmed by the receivers the sender knows
// (see sender.Config.StreamTimeout and StreamPartial).
func (st *Stream) Write(p []byte) (int, error) { return st.write(context.Background(), p, false) }

// WriteContext is Write with a context.
func (st *Stream) WriteContext(ctx context.Context, p []byte) (int, error) {
	return st.write(ctx, p, false)
}

// Flush ends the current message: the next write starts a new one, and
// the stream's flush mode applies.
func (st *Stream) Flush() error {
	_, err := st.write(context.Background(), nil, true)
	return err
}

func (st *Stream) write(ctx context.Context, p []byte, eom bool) (int, error) {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for {
		if s.tx == nil || s.stopNow {
			return total, ErrClosed
		}
		n, err := s.tx.WriteStream(st.id, p[total:], eom)
		total += n
		if err != nil {
			return total, err
		}
		if total == len(p) {
			s.kickLocked()
			return total, nil
		}
		// Whatever was written counts as part of this message: the
		// message end is marked with the rest.
		if err := s.wait(ctx); err != nil {
			return total, err
		}
	}
}

// Close sends what the stream holds and ends it; receivers read io.EOF.
func (st *Stream) Close() error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.tx == nil || s.stopNow {
			return ErrClosed
		}
		err := s.tx.CloseStream(st.id)
		if !errors.Is(err, sender.ErrCacheFull) {
			s.kickLocked()
			return err
		}
		if err := s.wait(context.Background()); err != nil {
			return err
		}
	}
}
