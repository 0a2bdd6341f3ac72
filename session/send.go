package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/sender"
)

// txLocked returns the sender engine, creating it on first use. Called
// with s.mu held.
func (s *Session) txLocked() (*sender.Sender, error) {
	if s.stopping || s.stopNow {
		return nil, ErrClosed
	}
	if s.tx != nil {
		return s.tx, nil
	}
	cfg := s.cfg.Sender
	cfg.NodeID = s.node
	cfg.Rand = rand.New(rand.NewPCG(s.seed, 1))
	if cfg.Rate == 0 && cfg.CC == nil {
		// Under congestion control 0 means CC.StartRate (or its default).
		cfg.Rate = 10e6
	}
	tx, err := sender.New(cfg, nowFunc())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s.tx = tx
	return tx, nil
}

// enqueue retries op until the transmit cache has room or ctx ends.
func (s *Session) enqueue(ctx context.Context, op func(*sender.Sender) (uint16, error)) (uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		tx, err := s.txLocked()
		if err != nil {
			return 0, err
		}
		id, err := op(tx)
		if !errors.Is(err, sender.ErrCacheFull) {
			s.kickLocked()
			return id, err
		}
		if err := s.wait(ctx); err != nil {
			return 0, err
		}
	}
}

func (s *Session) kickLocked() {
	s.kicked.Store(true)
	s.c.kick()
}

// SendBytes sends data as one object, with optional info (at most one
// segment, e.g. a name), and returns its id once queued. The session keeps
// a reference to data until the object leaves its transmit cache: do not
// modify it. It blocks while the transmit cache is full of unsent objects.
func (s *Session) SendBytes(ctx context.Context, data, info []byte) (uint16, error) {
	return s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) { return tx.SendData(data, info) })
}

// SendFile sends size bytes read from r (never held whole in memory) as a
// file object with optional info; reference receivers take the info as the
// file name ('/' separated relative path).
func (s *Session) SendFile(ctx context.Context, r io.ReaderAt, size int64, info []byte) (uint16, error) {
	return s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) { return tx.SendFile(r, size, info) })
}

// SendFileExt is SendFile with header extensions added to the object's
// NORM_INFO (see sender.Sender.SetInfoExtension): metadata that Shoal
// receivers read from ObjectInfo.InfoExt and others skip.
func (s *Session) SendFileExt(ctx context.Context, r io.ReaderAt, size int64, info []byte, ext framing.Extensions) (uint16, error) {
	if err := ext.Check(); err != nil {
		return 0, err
	}
	return s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) {
		id, err := tx.SendFile(r, size, info)
		if err == nil && len(ext) > 0 {
			err = tx.SetInfoExtension(id, ext)
		}
		return id, err
	})
}

// SendPath sends the file at path, named name in its info. The file stays
// open until the object leaves the transmit cache.
func (s *Session) SendPath(ctx context.Context, path, name string) (uint16, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	id, err := s.SendFile(ctx, f, fi.Size(), []byte(name))
	if err != nil {
		f.Close()
		return 0, err
	}
	s.mu.Lock()
	s.openFiles = append(s.openFiles, openFile{id, f})
	s.mu.Unlock()
	return id, nil
}

type openFile struct {
	id uint16
	f  *os.File
}

// SendCommand sends an application command (NORM_CMD(APPLICATION), at
// most one segment) once, ahead of data.
func (s *Session) SendCommand(content []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.txLocked()
	if err != nil {
		return err
	}
	err = tx.SendCommand(content)
	s.kickLocked()
	return err
}

// SetRate sets the send rate in bytes per second.
func (s *Session) SetRate(bytesPerSec float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.txLocked()
	if err != nil {
		return err
	}
	tx.SetRate(bytesPerSec)
	s.publish(RateChanged{bytesPerSec})
	s.kickLocked()
	return nil
}

// AckResult is one receiver's answer to a watermark.
type AckResult struct {
	Node uint32
	Err  error // nil: acknowledged; sender.ErrNoAck: no answer
}

type ackWait struct {
	results []AckResult
	done    bool
	err     error
}

// WaitAck asks the receivers in Config.Sender.AckingNodes (and, with
// TrackReceivers, every receiver heard) to acknowledge that they hold object
// id and everything before it, and waits for their answers: one AckResult
// per node, acknowledged or given up on after the sender's robust factor of
// requests.
func (s *Session) WaitAck(ctx context.Context, id uint16) ([]AckResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.txLocked()
	if err != nil {
		return nil, err
	}
	if err := tx.SetWatermark(id); err != nil {
		return nil, err
	}
	w := &ackWait{}
	s.acks[id] = w
	defer delete(s.acks, id)
	s.kickLocked()
	for !w.done {
		if err := s.wait(ctx); err != nil {
			return w.results, err
		}
	}
	return w.results, w.err
}

// txEvents turns sender engine events into session events. Called with
// s.mu held.
func (s *Session) txEvents() {
	for _, e := range s.tx.Events() {
		switch e.Kind {
		case sender.EventSent:
			s.publish(ObjectSent{e.Object})
		case sender.EventPurged:
			for i, f := range s.openFiles {
				if f.id == e.Object {
					f.f.Close()
					s.openFiles = append(s.openFiles[:i], s.openFiles[i+1:]...)
					break
				}
			}
			s.publish(ObjectPurged{e.Object})
		case sender.EventObjectError:
			s.log.Error("object could not be read", "object", e.Object, "err", e.Err)
		case sender.EventAck:
			if w := s.acks[e.Object]; w != nil {
				w.results = append(w.results, AckResult{e.Node, e.Err})
			}
			s.publish(AckReceived{e.Object, e.Node, e.Err})
		case sender.EventWatermark:
			if w := s.acks[e.Object]; w != nil {
				w.done, w.err = true, e.Err
				if errors.Is(e.Err, sender.ErrNoAck) {
					w.err = nil // per-node results say who failed
				}
			}
		case sender.EventFlushed:
			s.publish(Flushed{})
		case sender.EventClosed:
			s.txClosed = true
		case sender.EventSlowReceiver:
			s.log.Warn("receiver too slow; no longer holding the sender back", "node", e.Node)
			s.publish(SlowReceiver{e.Node})
		}
	}
}
