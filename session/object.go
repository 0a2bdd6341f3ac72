package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shoalnet/shoal/receiver"
)

// Errors of received objects.
var (
	// ErrDataLost is what a stream's Read reports (as a *GapError, which
	// matches it with errors.Is) where part of the stream was lost for
	// good; reading goes on after it.
	ErrDataLost = errors.New("session: stream data lost")
	// ErrStreamOverflow is what a stream's Read reports (as a *GapError
	// with Overflow set, which also matches ErrDataLost) where data was
	// dropped because the application read too slowly and the session's
	// buffer for the stream (64 MiB) filled up. Only a sender without flow
	// control (sender.Config.StreamPartial, or another implementation) can
	// cause it: Shoal's flow control holds the sender back first.
	ErrStreamOverflow = errors.New("session: stream read too slowly; buffer full")
)

// Compile-time checks of the interfaces the types are meant to satisfy.
var (
	_ io.ReadCloser  = (*Object)(nil)
	_ io.WriteCloser = (*Stream)(nil)
	_ io.Closer      = (*Session)(nil)
)

// GapError is the error a stream's Read returns, in order, where data was
// lost for good: Lost bytes are missing between what was read before it
// and what is read after. A byte stream goes on right after the gap, a
// message stream at the next message start (see receiver.EventStreamGap).
// errors.Is(err, ErrDataLost) is true, and errors.Is(err,
// ErrStreamOverflow) too when the reader was too slow (Overflow).
//
// A GapError is not the end of the stream: the next Read returns the data
// after the gap. io.Copy and other readers that stop at the first error
// stop there, though; Object.SetSkipGaps makes Read pass over gaps instead.
type GapError struct {
	Lost     int64
	Overflow bool // dropped because the session's buffer for the stream was full
}

func (e *GapError) Error() string {
	if e.Overflow {
		return fmt.Sprintf("session: stream read too slowly; %d bytes dropped", e.Lost)
	}
	return fmt.Sprintf("session: stream data lost: %d bytes", e.Lost)
}

// Is makes a GapError match ErrDataLost, and ErrStreamOverflow when the
// data was dropped for a slow reader.
func (e *GapError) Is(target error) bool {
	return target == ErrDataLost || (e.Overflow && target == ErrStreamOverflow)
}

// maxStreamBuffer bounds what a stream holds for a slow reader, as a last
// resort: past streamHoldBytes the receiver stops confirming the stream
// to its sender, whose writer then waits, so only a sender without flow
// control (a partially reliable stream, another implementation) can fill
// it. What does not fit is reported as a gap (ErrStreamOverflow). A
// variable for tests.
var maxStreamBuffer = 64 << 20

// streamHoldBytes is how much unread stream data the session buffers
// before it holds the sender back.
const streamHoldBytes = 8 << 20

// streamGapMark is a gap at a position in the bytes a stream buffered.
type streamGapMark struct {
	at, lost int64
	overflow bool
}

// Object is an object received from another sender. Objects come from
// Accept as soon as they start; Wait for them to complete. For streams, Read
// returns the data in order as it arrives.
type Object struct {
	s    *Session
	done chan struct{}

	mu      sync.Mutex
	info    ObjectInfo
	err     error
	data    []byte
	path    string
	buf     []byte          // stream data not read yet
	gaps    []streamGapMark // stream gaps not reported by Read yet
	written int64           // stream bytes buffered in all
	read    int64           // stream bytes read in all
	holding bool            // the engine holds the sender back for the reader
	notify  chan struct{}   // closed and replaced when stream data arrives, or on Close and SetReadDeadline
	closed  bool
	skip    bool      // SetSkipGaps: Read passes over gaps
	lost    int64     // stream bytes lost in gaps Read has passed
	dl      time.Time // SetReadDeadline

	// Message mode (message.go).
	starts     []int64 // message starts to resume reading at, by position
	mr         *receiver.MessageReader
	pendingMsg *[]byte // a message to return after the loss before it

	// Owned by the session (s.mu): the bytes this object counts in
	// s.appBytes while it waits for Accept.
	queued bool
	acct   int64
}

func newObject(s *Session, info ObjectInfo) *Object {
	return &Object{s: s, info: info, done: make(chan struct{}), notify: make(chan struct{})}
}

// Info describes the object. Info.Info (the sender's NORM_INFO, e.g. a file
// name) may still be nil while the object starts; it is set by the time Wait
// returns if the sender sent one.
func (o *Object) Info() ObjectInfo {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.info
}

// Wait blocks until the object is complete (nil) or aborted (the reason),
// or ctx ends.
func (o *Object) Wait(ctx context.Context) error {
	select {
	case <-o.done:
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done is closed when the object is complete or aborted.
func (o *Object) Done() <-chan struct{} { return o.done }

// Bytes returns a complete data object, or a file object kept in memory
// (no Config.Dir or FileSink). It is nil before completion.
func (o *Object) Bytes() []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.data
}

// Path returns where a complete file object was written under Config.Dir.
func (o *Object) Path() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.path
}

// Read reads a stream's data in order. Where data was lost for good (the
// sender gave up on this receiver, or it joined late) it returns, in its
// place, a *GapError saying how many bytes are missing, then goes on with
// the data after it (unless SetSkipGaps); io.EOF after the sender closed
// the stream. A reader that falls more than 8 MiB behind holds the sender
// back. Read returns ErrNotStream on other objects, ErrClosed after Close
// (a Read blocked in Close returns too), and an error matching
// os.ErrDeadlineExceeded past the read deadline.
func (o *Object) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		o.mu.Lock()
		if o.info.Kind != KindStream {
			o.mu.Unlock()
			return 0, fmt.Errorf("%w: Read on a %v object", ErrNotStream, o.info.Kind)
		}
		if o.closed {
			o.mu.Unlock()
			return 0, ErrClosed
		}
		for len(o.gaps) > 0 && o.gaps[0].at == o.read {
			g := o.gaps[0]
			o.gaps = o.gaps[1:]
			o.lost += g.lost
			if !o.skip {
				o.mu.Unlock()
				return 0, &GapError{Lost: g.lost, Overflow: g.overflow}
			}
		}
		if len(o.buf) > 0 {
			b := o.buf
			if len(o.gaps) > 0 {
				b = b[:o.gaps[0].at-o.read]
			}
			n := copy(p, b)
			o.buf = o.buf[n:]
			o.read += int64(n)
			release := o.holding && len(o.buf) < streamHoldBytes/2
			if release {
				o.holding = false
			}
			o.mu.Unlock()
			if release {
				o.s.holdStream(o, false)
			}
			return n, nil
		}
		select {
		case <-o.done:
			err := o.err
			o.mu.Unlock()
			if err == nil {
				err = io.EOF
			}
			return 0, err
		default:
		}
		var expired <-chan time.Time
		if !o.dl.IsZero() {
			d := time.Until(o.dl)
			if d <= 0 {
				o.mu.Unlock()
				return 0, os.ErrDeadlineExceeded
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		ch := o.notify
		o.mu.Unlock()
		select {
		case <-ch:
		case <-o.done:
		case <-expired:
		}
	}
}

// SetReadDeadline makes Read return an error matching
// os.ErrDeadlineExceeded once t has passed, as net.Conn does; a blocked
// Read takes a new deadline at once. The zero time means no deadline.
func (o *Object) SetReadDeadline(t time.Time) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.dl = t
	o.wakeLocked()
	return nil
}

// SetSkipGaps makes Read pass over data lost for good instead of
// returning a *GapError: the stream then reads as its data with the gaps
// left out, which suits io.Copy. Gaps are still published as StreamGap
// events, and LostBytes counts them.
func (o *Object) SetSkipGaps(skip bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.skip = skip
	o.wakeLocked()
}

// LostBytes returns how many bytes of a stream Read has passed over as
// lost (reported as a *GapError, or skipped), so far.
func (o *Object) LostBytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lost
}

// Close stops reading a stream: its data is discarded from now on, a Read
// blocked on it returns ErrClosed, and so does every later Read. Closing a
// data or file object only makes Read fail; its Bytes and Path stay.
func (o *Object) Close() error {
	o.mu.Lock()
	o.closed = true
	o.buf = nil
	release := o.holding
	o.holding = false
	o.wakeLocked()
	o.mu.Unlock()
	if release {
		o.s.holdStream(o, false)
	}
	return nil
}

// streamData buffers stream data for Read, and reports whether the
// reader is so far behind that the sender should be held back.
func (o *Object) streamData(d []byte) (hold bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	if len(o.buf)+len(d) > maxStreamBuffer {
		o.gapLocked(int64(len(d)), true)
		return false
	}
	o.buf = append(o.buf, d...)
	o.written += int64(len(d))
	o.wakeLocked()
	if !o.holding && len(o.buf) > streamHoldBytes {
		o.holding = true
		return true
	}
	return false
}

func (o *Object) streamGap(lost int64) {
	o.mu.Lock()
	o.gapLocked(lost, false)
	o.mu.Unlock()
}

func (o *Object) gapLocked(lost int64, overflow bool) {
	if n := len(o.gaps); n > 0 && o.gaps[n-1].at == o.written {
		o.gaps[n-1].lost += lost
		o.gaps[n-1].overflow = o.gaps[n-1].overflow || overflow
	} else {
		o.gaps = append(o.gaps, streamGapMark{at: o.written, lost: lost, overflow: overflow})
	}
	o.wakeLocked()
}

// holdStream tells the receiver engine whether o's reader is behind (see
// streamHoldBytes).
func (s *Session) holdStream(o *Object, hold bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holdStreamLocked(nowFunc(), o, hold)
}

func (s *Session) holdStreamLocked(now time.Time, o *Object, hold bool) {
	if s.stopNow {
		return
	}
	s.rx.HoldStream(now, uint32(o.info.Sender), uint16(o.info.ID), hold)
	if !hold {
		s.kickLocked() // acknowledgements may be due now
	}
}

func (o *Object) wakeLocked() {
	close(o.notify)
	o.notify = make(chan struct{})
}

func (o *Object) finish(err error, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	select {
	case <-o.done:
		return
	default:
	}
	o.err, o.data = err, data
	close(o.done)
}

// rxEvents turns receiver engine events into objects and session events.
// Called with s.mu held.
func (s *Session) rxEvents(now time.Time) {
	for _, e := range s.rx.Events() {
		k := objKey{e.Sender, e.Object}
		switch e.Kind {
		case receiver.EventSenderNew:
			s.publish(SenderJoined{NodeID(e.Sender)})
		case receiver.EventSenderReset:
			s.publish(SenderReset{NodeID(e.Sender)})
		case receiver.EventSenderGone:
			s.publish(SenderGone{NodeID(e.Sender)})
		case receiver.EventSenderRejected:
			s.publish(SenderRejected{NodeID(e.Sender)})
		case receiver.EventStarted:
			kind := KindData
			switch {
			case e.File:
				kind = KindFile
			case e.Stream:
				kind = KindStream
			}
			o := newObject(s, ObjectInfo{Sender: NodeID(e.Sender), ID: ObjectID(e.Object), Kind: kind, Size: e.Size})
			if kind == KindStream {
				o.info.Size = 0
			}
			s.objs[k] = o
			s.offer(o)
			s.publish(ObjectStarted{o.info})
		case receiver.EventInfo:
			if o := s.objs[k]; o != nil {
				o.mu.Lock()
				o.info.Info = append([]byte(nil), e.Info...)
				o.info.InfoExt = e.InfoExt
				o.mu.Unlock()
			}
		case receiver.EventStreamData:
			if o := s.objs[k]; o != nil {
				o.msgMark(e.MsgStart)
				if o.streamData(e.Data) {
					s.holdStreamLocked(now, o, true)
				}
			}
		case receiver.EventStreamGap:
			if o := s.objs[k]; o != nil {
				o.streamGap(e.Lost)
				s.publish(StreamGap{o.Info(), e.Lost})
			}
		case receiver.EventCompleted:
			// The engine may acknowledge the object only after Held: once
			// it is in the application's hands (or waiting for Accept),
			// with any file committed to its place.
			o := s.objs[k]
			delete(s.objs, k)
			if o == nil {
				if sk := s.sinks[k]; sk != nil {
					delete(s.sinks, k)
					sk.aborted.Store(true)
					s.disk.put(diskJob{op: diskAbort, sk: sk})
				}
				s.rx.Held(now, e.Sender, e.Object, false)
				continue
			}
			if sk := s.sinks[k]; sk != nil {
				// The disk writer finishes the object once its writes
				// are done (see committed).
				delete(s.sinks, k)
				s.disk.put(diskJob{op: diskCommit, sk: sk, o: o, name: append([]byte(nil), e.Info...)})
				continue
			}
			o.finish(nil, e.Data)
			if o.queued && len(e.Data) > 0 {
				o.acct = int64(len(e.Data))
				s.appBytes += o.acct
				s.rx.SetAppBytes(s.appBytes)
			}
			s.rx.Held(now, e.Sender, e.Object, true)
			s.publish(ObjectCompleted{o.Info()})
		case receiver.EventAborted:
			if sk := s.sinks[k]; sk != nil {
				delete(s.sinks, k)
				sk.aborted.Store(true)
				s.disk.put(diskJob{op: diskAbort, sk: sk})
			}
			if o := s.objs[k]; o != nil {
				delete(s.objs, k)
				o.finish(e.Err, nil)
				s.publish(ObjectAborted{o.Info(), e.Err})
			}
		case receiver.EventCommand:
			s.publish(CommandReceived{NodeID(e.Sender), append([]byte(nil), e.Data...)})
		}
	}
}

// offer queues o for Accept. Called with s.mu held.
func (s *Session) offer(o *Object) {
	o.queued = true
	s.pending = append(s.pending, o)
	close(s.acceptNote)
	s.acceptNote = make(chan struct{})
}

// Accept returns the next object another sender started sending, in the
// order they started. Objects wait for Accept however slowly it is called:
// none is dropped. Complete data objects (and files kept in memory) that
// wait count against Config.Receiver.MaxBufferBytes; while they fill it the
// session takes no new in-memory objects and leaves them to be repaired
// later, and watermark acknowledgements wait. Files written to disk (Dir,
// FileSink) cost no memory while they wait. Accept returns ErrClosed once
// the session is closed and every object that waited has been taken.
func (s *Session) Accept(ctx context.Context) (*Object, error) {
	s.mu.Lock()
	for len(s.pending) == 0 {
		if s.acceptClosed {
			s.mu.Unlock()
			return nil, ErrClosed
		}
		ch := s.acceptNote
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		s.mu.Lock()
	}
	o := s.pending[0]
	s.pending[0] = nil
	s.pending = s.pending[1:]
	o.queued = false
	if o.acct > 0 {
		s.appBytes -= o.acct
		o.acct = 0
		s.rx.SetAppBytes(s.appBytes)
	}
	s.mu.Unlock()
	return o, nil
}

// fileSink writes a received file object to a temporary file in
// Config.Dir and renames it into place when complete.
type fileSink struct {
	f   *os.File
	dir string
}

func (f *fileSink) WriteAt(b []byte, off int64) (int, error) { return f.f.WriteAt(b, off) }

func (f *fileSink) abort() {
	if f.f != nil {
		name := f.f.Name()
		f.f.Close()
		os.Remove(name)
	}
}

// commit closes the file and moves it to the name the sender gave, when
// that name is a safe relative path, else to object-SENDER-ID.
func (f *fileSink) commit(info []byte, sender uint32, id uint16) (string, error) {
	if f.f == nil {
		return "", nil
	}
	tmp := f.f.Name()
	if err := f.f.Close(); err != nil {
		os.Remove(tmp)
		return "", err
	}
	dst, err := SafePath(f.dir, string(info))
	if err != nil {
		dst = filepath.Join(f.dir, fmt.Sprintf("object-%08x-%d", sender, id))
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return dst, nil
}

// ErrUnsafeName is returned by SafePath.
var ErrUnsafeName = errors.New("session: unsafe file name")

// SafePath joins dir and a sender-supplied relative name ('/' separated,
// as the reference file-cast tool sends them) and refuses names that could
// write outside dir: empty, absolute, with empty, "." or ".." components,
// with backslashes or NUL bytes, components over 255 bytes, and paths that
// go through a symbolic link inside dir.
func SafePath(dir, name string) (string, error) {
	bad := func(why string) (string, error) { return "", fmt.Errorf("%w: %q: %s", ErrUnsafeName, name, why) }
	if name == "" || len(name) > 4096 {
		return bad("empty or too long")
	}
	if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") || filepath.VolumeName(name) != "" {
		return bad("absolute, or has a backslash or NUL")
	}
	parts := strings.Split(name, "/")
	p := dir
	for i, c := range parts {
		if c == "" || c == "." || c == ".." || len(c) > 255 {
			return bad("empty, dot or over-long component")
		}
		p = filepath.Join(p, c)
		if fi, err := os.Lstat(p); err == nil {
			if fi.Mode()&os.ModeSymlink != 0 {
				return bad("goes through a symbolic link")
			}
			if i < len(parts)-1 && !fi.IsDir() {
				return bad("a parent is not a directory")
			}
		}
	}
	return p, nil
}

// sink is the receiver engine's Sink: files go to Config.FileSink or
// Config.Dir, through the disk writer; data objects and streams stay in
// the engine. Called with s.mu held.
func (s *Session) sink(info receiver.ObjectInfo) (io.WriterAt, error) {
	if !info.File || (s.cfg.FileSink == nil && s.cfg.Dir == "") {
		return nil, nil
	}
	oi := ObjectInfo{Sender: NodeID(info.Sender), ID: ObjectID(info.Object), Kind: KindFile, Size: info.Size, Info: info.Info}
	sk := &asyncSink{s: s, info: oi}
	s.sinks[objKey{info.Sender, info.Object}] = sk
	s.disk.put(diskJob{op: diskOpen, sk: sk})
	return sk, nil
}
