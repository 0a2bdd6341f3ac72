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
		return nil, s.closedErr()
	}
	if s.tx != nil {
		return s.tx, nil
	}
	tx, err := sender.New(s.txConfig(), nowFunc())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	s.tx = tx
	st := tx.Stats()
	s.trace = traceState{rate: st.Rate, grtt: st.GRTT}
	return tx, nil
}

// txConfig is the sender engine's configuration: Config.Sender with the
// session's node id, randomness and default rate.
func (s *Session) txConfig() sender.Config {
	cfg := s.cfg.Sender
	cfg.NodeID = s.node
	cfg.Rand = rand.New(rand.NewPCG(s.seed, 1))
	return cfg
}

// enqueue retries op until the transmit cache has room or ctx ends.
func (s *Session) enqueue(ctx context.Context, op func(*sender.Sender) (uint16, error)) (ObjectID, error) {
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
			return ObjectID(id), err
		}
		if err := s.wait(ctx); err != nil {
			return 0, err
		}
	}
}

func (s *Session) kickLocked() { s.c.Wake() }

// SendBytes sends data as one object, with optional info (at most one
// segment, e.g. a name), and returns its id once queued. The session keeps
// a reference to data until the object leaves its transmit cache: do not
// modify it. It blocks while the transmit cache is full of unsent objects.
func (s *Session) SendBytes(ctx context.Context, data, info []byte) (ObjectID, error) {
	return s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) { return tx.SendData(data, info) })
}

// SendFile sends size bytes read from r (never held whole in memory) as a
// file object with optional info; reference receivers take the info as the
// file name ('/' separated relative path).
func (s *Session) SendFile(ctx context.Context, r io.ReaderAt, size int64, info []byte) (ObjectID, error) {
	return s.enqueue(ctx, func(tx *sender.Sender) (uint16, error) { return tx.SendFile(r, size, info) })
}

// SendFileExt is SendFile with header extensions added to the object's
// NORM_INFO (see sender.Sender.SetInfoExtension): metadata that Shoal
// receivers read from ObjectInfo.InfoExt and others skip.
func (s *Session) SendFileExt(ctx context.Context, r io.ReaderAt, size int64, info []byte, ext framing.Extensions) (ObjectID, error) {
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
func (s *Session) SendPath(ctx context.Context, path, name string) (ObjectID, error) {
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
	s.openFiles = append(s.openFiles, openFile{uint16(id), f})
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
	s.observeTx() // publishes RateChanged
	s.kickLocked()
	return nil
}

// AckResult is one receiver's answer to a watermark.
type AckResult struct {
	Node NodeID
	Err  error // nil: acknowledged; sender.ErrNoAck: no answer
}

// ackWait is a WaitAck request: the sender engine runs one watermark at a
// time, so requests queue (s.acks, the head being the engine's) and
// requests for the same object share one.
type ackWait struct {
	id      uint16
	results []AckResult
	done    chan struct{} // closed when the watermark completed or failed
	err     error
	waiters int
}

// WaitAck asks the receivers in Config.Sender.AckingNodes (and, with
// TrackReceivers, every receiver heard) to acknowledge that they hold object
// id and everything before it, and waits for their answers: one AckResult
// per node, acknowledged or given up on after the sender's robust factor of
// requests.
//
// It is safe to call concurrently: the sender asks for one watermark at a
// time, so calls for different objects are served in turn, and calls for
// the same object share one request and its results. A call that ends with
// its context withdraws its request if no other call shares it.
func (s *Session) WaitAck(ctx context.Context, oid ObjectID) ([]AckResult, error) {
	id := uint16(oid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.txLocked(); err != nil {
		return nil, err
	}
	var w *ackWait
	for _, q := range s.acks {
		if q.id == id {
			w = q
			break
		}
	}
	if w == nil {
		w = &ackWait{id: id, done: make(chan struct{})}
		s.acks = append(s.acks, w)
		if len(s.acks) == 1 {
			s.startAck()
		}
	}
	w.waiters++
	for {
		select {
		case <-w.done:
			w.waiters--
			return w.results, w.err
		default:
		}
		done := w.done
		s.mu.Unlock()
		var err error
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
		case <-s.done:
		}
		s.mu.Lock()
		if err != nil {
			w.waiters--
			if w.waiters == 0 {
				s.dropAck(w)
			}
			return w.results, err
		}
		if s.stopNow {
			select {
			case <-w.done:
			default:
				w.waiters--
				return w.results, s.closedErr()
			}
		}
	}
}

// startAck sets the watermark at the head of the queue in the engine,
// failing heads the engine refuses. Called with s.mu held.
func (s *Session) startAck() {
	for len(s.acks) > 0 {
		w := s.acks[0]
		err := s.tx.SetWatermark(w.id)
		if err == nil {
			s.kickLocked()
			return
		}
		w.err = err
		close(w.done)
		s.acks = s.acks[1:]
	}
}

// dropAck withdraws a request nobody waits for any more. The engine's
// watermark cannot be withdrawn, but the next request replaces it.
// Called with s.mu held.
func (s *Session) dropAck(w *ackWait) {
	for i, q := range s.acks {
		if q == w {
			s.acks = append(s.acks[:i], s.acks[i+1:]...)
			if i == 0 && s.tx != nil {
				s.startAck()
			}
			return
		}
	}
}

// failAcks ends every queued request when the session stops. Called with
// s.mu held.
func (s *Session) failAcks() {
	for _, w := range s.acks {
		w.err = s.closedErr()
		close(w.done)
	}
	s.acks = nil
}

// txEvents turns sender engine events into session events. Called with
// s.mu held.
func (s *Session) txEvents() {
	for _, e := range s.tx.Events() {
		switch e.Kind {
		case sender.EventSent:
			s.publish(ObjectSent{ObjectID(e.Object)})
		case sender.EventPurged:
			for i, f := range s.openFiles {
				if f.id == e.Object {
					f.f.Close()
					s.openFiles = append(s.openFiles[:i], s.openFiles[i+1:]...)
					break
				}
			}
			s.publish(ObjectPurged{ObjectID(e.Object)})
		case sender.EventObjectError:
			s.log.Error("object could not be read", "object", e.Object, "err", e.Err)
		case sender.EventAck:
			if len(s.acks) > 0 && s.acks[0].id == e.Object {
				w := s.acks[0]
				w.results = append(w.results, AckResult{NodeID(e.Node), e.Err})
			}
			s.publish(AckReceived{ObjectID(e.Object), NodeID(e.Node), e.Err})
		case sender.EventWatermark:
			if len(s.acks) > 0 && s.acks[0].id == e.Object {
				w := s.acks[0]
				w.err = e.Err
				if errors.Is(e.Err, sender.ErrNoAck) {
					w.err = nil // per-node results say who failed
				}
				close(w.done)
				s.acks = s.acks[1:]
				s.startAck()
			}
		case sender.EventFlushed:
			s.publish(Flushed{})
		case sender.EventClosed:
			s.txClosed = true
		case sender.EventSlowReceiver:
			s.log.Warn("receiver too slow; no longer holding the sender back", "node", e.Node)
			s.publish(SlowReceiver{NodeID(e.Node)})
		}
	}
}
