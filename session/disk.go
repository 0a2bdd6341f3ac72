package session

import (
	"bytes"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalnet/shoal/receiver"
)

// The application's file destinations (Config.FileSink, and the files
// under Config.Dir) are written on a goroutine of their own, the disk
// writer, never under the session's lock: a slow disk then holds back only
// the files, and a FileSink may call the session. The receiver engine's
// writes are copied into a queue; when the queue holds more than
// diskQueueBytes the session's loop stops reading packets until it drains
// (the socket buffer and NACK repair absorb the pause).

// diskQueueBytes bounds the bytes waiting for the disk writer.
const diskQueueBytes = 32 << 20

type diskOp uint8

const (
	diskOpen   diskOp = iota + 1 // ask FileSink or create the temporary file
	diskWrite                    // write b at off
	diskCommit                   // all written: close, rename, finish the object
	diskAbort                    // the object failed: drop the temporary file
	diskBlock                    // write blk's pieces, then keep its buffer as a spare
)

type diskJob struct {
	op  diskOp
	sk  *asyncSink
	off int64
	b   *[]byte
	blk *blockJob // diskBlock
	o   *Object   // diskCommit
	// diskCommit: the object's NORM_INFO, which may have arrived after
	// the object started.
	name []byte
}

// asyncSink is what the receiver engine writes a file object to: it
// queues the writes for the disk writer.
type asyncSink struct {
	s       *Session
	info    ObjectInfo
	aborted atomic.Bool // the object failed: skip its queued work

	// Owned by the disk writer goroutine.
	w    io.WriterAt
	file *fileSink     // the temporary file under Config.Dir
	mem  *bytes.Buffer // FileSink returned no destination: kept in memory
	err  error         // the first error; the object fails at commit
}

var diskBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// WriteAt queues a copy of b. Called by the engine with s.mu held.
func (a *asyncSink) WriteAt(b []byte, off int64) (int, error) {
	p := diskBufs.Get().(*[]byte)
	*p = append((*p)[:0], b...)
	a.s.disk.put(diskJob{op: diskWrite, sk: a, off: off, b: p})
	return len(b), nil
}

// blockJob is a complete block the engine handed over with its buffer.
type blockJob struct {
	buf    []byte
	pieces []receiver.Piece
}

var _ receiver.BlockSink = (*asyncSink)(nil)

var blockJobs = sync.Pool{New: func() any { return new(blockJob) }}

// WriteBlock queues a complete block without copying it: the queue keeps
// the engine's buffer until the block is written, and the engine goes on
// with a spare buffer from blocks written before. Called by the engine
// with s.mu held.
func (a *asyncSink) WriteBlock(buf []byte, pieces []receiver.Piece) ([]byte, error) {
	j := blockJobs.Get().(*blockJob)
	j.buf = buf
	j.pieces = append(j.pieces[:0], pieces...)
	return a.s.disk.putBlock(diskJob{op: diskBlock, sk: a, blk: j}), nil
}

// diskWriter is the queue and its goroutine.
type diskWriter struct {
	s       *Session
	mu      sync.Mutex
	jobs    []diskJob
	bytes   int64
	running bool
	closed  bool // no more jobs: exit when the queue is empty
	// more and room are closed and replaced only when someone waits on
	// them, so that a write costs no channel: more when jobs are added
	// while the goroutine is idle, room when the queue shrinks under a
	// waitRoom.
	more        chan struct{}
	idle        bool
	room        chan struct{}
	roomWaiters int
	exited      chan struct{} // closed when the goroutine has exited (or never ran)
	// spares are the buffers of blocks written, for the engine to take
	// for blocks to come in place of the ones it hands over.
	spares     [][]byte
	spareBytes int
}

// maxDiskSpareBytes bounds the memory the spares keep.
const maxDiskSpareBytes = 8 << 20

func newDiskWriter(s *Session) *diskWriter {
	return &diskWriter{s: s, more: make(chan struct{}), room: make(chan struct{}), exited: make(chan struct{})}
}

func (d *diskWriter) put(j diskJob) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.putLocked(j)
}

// putBlock queues a diskBlock job and returns a spare buffer for the
// engine, as big as the one it hands over.
func (d *diskWriter) putBlock(j diskJob) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := cap(j.blk.buf)
	d.putLocked(j)
	for n := len(d.spares); n > 0; n = len(d.spares) {
		b := d.spares[n-1]
		d.spares[n-1] = nil
		d.spares = d.spares[:n-1]
		d.spareBytes -= cap(b)
		if cap(b) >= want {
			return b
		}
	}
	// The blocks under way hold every buffer: one more. In a steady
	// stream they come back as fast as they go.
	return make([]byte, want)
}

func (d *diskWriter) putLocked(j diskJob) {
	if d.closed {
		return
	}
	d.jobs = append(d.jobs, j)
	if j.b != nil {
		d.bytes += int64(len(*j.b))
	}
	if j.blk != nil {
		d.bytes += int64(cap(j.blk.buf))
	}
	if !d.running {
		d.running = true
		go d.run()
	}
	// Data waits for more, so that the goroutine wakes up once per
	// diskWakeBytes rather than once per block (a wake-up costs the
	// loop's thread a futex and a context switch); anything else, and
	// kick, wakes it at once.
	if j.op != diskWrite && j.op != diskBlock || d.bytes >= diskWakeBytes {
		d.wakeLocked()
	}
}

// diskWakeBytes is how much data the disk writer lets gather before it
// wakes up for it.
const diskWakeBytes = 1 << 20

func (d *diskWriter) wakeLocked() {
	if d.idle {
		d.idle = false
		close(d.more)
		d.more = make(chan struct{})
	}
}

// kick has the goroutine write what is queued. The session's loop calls
// it when it finds no packets waiting: the data need not wait for more.
func (d *diskWriter) kick() {
	d.mu.Lock()
	if len(d.jobs) > 0 {
		d.wakeLocked()
	}
	d.mu.Unlock()
}

// close lets the goroutine finish the queue and exit.
func (d *diskWriter) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if !d.running {
		close(d.exited)
		return
	}
	close(d.more)
	d.more = make(chan struct{})
}

// waitRoom blocks while the queue is over diskQueueBytes, or until quit
// is closed.
func (d *diskWriter) waitRoom(quit <-chan struct{}) {
	for {
		d.mu.Lock()
		if d.bytes <= diskQueueBytes || d.closed {
			d.mu.Unlock()
			return
		}
		d.wakeLocked()
		ch := d.room
		d.roomWaiters++
		d.mu.Unlock()
		select {
		case <-ch:
		case <-quit:
		}
		d.mu.Lock()
		d.roomWaiters--
		d.mu.Unlock()
		select {
		case <-quit:
			return
		default:
		}
	}
}

func (d *diskWriter) run() {
	defer close(d.exited)
	for {
		d.mu.Lock()
		for len(d.jobs) == 0 {
			if d.closed {
				d.mu.Unlock()
				return
			}
			ch := d.more
			d.idle = true
			d.mu.Unlock()
			<-ch
			d.mu.Lock()
		}
		j := d.jobs[0]
		d.jobs[0] = diskJob{}
		d.jobs = d.jobs[1:]
		d.mu.Unlock()

		d.do(j)

		d.mu.Lock()
		if j.b != nil {
			d.bytes -= int64(len(*j.b))
			diskBufs.Put(j.b)
		}
		if blk := j.blk; blk != nil {
			d.bytes -= int64(cap(blk.buf))
			if d.spareBytes+cap(blk.buf) <= maxDiskSpareBytes {
				d.spares = append(d.spares, blk.buf)
				d.spareBytes += cap(blk.buf)
			}
			clear(blk.pieces)
			blk.buf, blk.pieces = nil, blk.pieces[:0]
			blockJobs.Put(blk)
		}
		if (j.b != nil || j.blk != nil) && d.roomWaiters > 0 {
			close(d.room)
			d.room = make(chan struct{})
		}
		d.mu.Unlock()
	}
}

// do runs one job, outside every lock.
func (d *diskWriter) do(j diskJob) {
	a, s := j.sk, d.s
	switch j.op {
	case diskOpen:
		if a.aborted.Load() {
			return
		}
		if s.cfg.FileSink != nil {
			a.w, a.err = s.cfg.FileSink(a.info)
			if a.err == nil && a.w == nil {
				a.mem = new(bytes.Buffer)
			}
			return
		}
		f, err := os.CreateTemp(s.cfg.Dir, ".shoal-*.part")
		if err != nil {
			a.err = err
			return
		}
		a.file = &fileSink{f: f, dir: s.cfg.Dir}
		a.w = a.file
	case diskWrite:
		a.write(*j.b, j.off)
	case diskBlock:
		for _, p := range j.blk.pieces {
			a.write(p.B, p.Off)
		}
	case diskAbort:
		if a.file != nil {
			a.file.abort()
		}
	case diskCommit:
		var path string
		var data []byte
		err := a.err
		switch {
		case err != nil:
			if a.file != nil {
				a.file.abort()
			}
		case a.file != nil:
			path, err = a.file.commit(j.name, uint32(a.info.Sender), uint16(a.info.ID))
		case a.mem != nil:
			data = a.mem.Bytes()
		}
		s.committed(j.o, path, data, err)
	}
}

// write writes b at off to the object's destination, unless the object
// failed. Called by the disk writer.
func (a *asyncSink) write(b []byte, off int64) {
	if a.aborted.Load() || a.err != nil {
		return
	}
	switch {
	case a.mem != nil:
		if need := int(off) + len(b); need > a.mem.Len() {
			a.mem.Write(make([]byte, need-a.mem.Len()))
		}
		copy(a.mem.Bytes()[off:], b)
	case a.w != nil:
		_, a.err = a.w.WriteAt(b, off)
	}
}

// committed settles a file object once the disk writer is done with it.
func (s *Session) committed(o *Object, path string, data []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o.mu.Lock()
	o.path = path
	o.mu.Unlock()
	o.finish(err, data)
	if s.stopNow {
		return // the engine and the events are gone
	}
	info := o.Info()
	now := time.Now()
	if err != nil {
		s.rx.Held(now, uint32(info.Sender), uint16(info.ID), false)
		s.publish(ObjectAborted{info, err})
	} else {
		s.rx.Held(now, uint32(info.Sender), uint16(info.ID), true)
		s.publish(ObjectCompleted{info})
	}
	s.kickLocked() // an acknowledgement may be due
}
