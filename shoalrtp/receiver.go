package shoalrtp

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/shoalnet/shoal/session"
)

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Latency is the playout latency: each packet is released this long
	// after it would have arrived over the fastest path seen. 0 means
	// 200 ms.
	Latency time.Duration
	// OnRTCP, if set, gets each RTCP packet as sent (otherwise they are
	// dropped). It is called from ReadPacket, in the packet's place in the
	// stream and at its playout time like RTP, so that a BYE reaches the
	// player after the media sent before it, not ahead of the jitter
	// buffer. RTCP that comes before any RTP is passed on when it arrives.
	OnRTCP func([]byte)
	// Session, if set, is the session the stream is received on: its FEC
	// figures go into Stats.
	Session *session.Session
	// Now is the clock (time.Now if nil), for tests.
	Now func() time.Time
}

// Stats are a Receiver's figures.
type Stats struct {
	Received uint64 // RTP packets released in order
	Late     uint64 // packets that arrived after their playout deadline
	Lost     uint64 // packets skipped: missing at their deadline
	RTCP     uint64 // RTCP packets passed through
	// MessagesLost counts the messages the Shoal stream reported lost
	// after the first packet arrived (given up at their deadline); they
	// show as Lost packets too.
	MessagesLost uint64
	// With ReceiverConfig.Session, the session's counts of source
	// symbols rebuilt from parity (FEC) and of source symbols that came
	// after data of a later block (NACK repairs, or reordering on the
	// path).
	FECRecovered, NACKRecovered uint64
	// Repaired counts packets whose transit exceeded the fastest by more
	// than half the latency: those a repair brought late.
	Repaired uint64
	// AddedP50 and AddedP99 are percentiles of the latency the transport
	// added: each packet's transit beyond the fastest seen.
	AddedP50, AddedP99 time.Duration
}

type entry struct {
	epoch  uint64
	ext    int64  // extended sequence number within the epoch
	sub    uint64 // 0 for RTP; RTCP: after the RTP packet at ext, by arrival
	due    time.Time
	pkt    *rtp.Packet
	rtcp   []byte
	isLate bool
}

func (a entry) cmp(b entry) int {
	switch {
	case a.epoch != b.epoch:
		return int(a.epoch) - int(b.epoch)
	case a.ext != b.ext:
		return int(a.ext - b.ext)
	case a.sub < b.sub:
		return -1
	case a.sub > b.sub:
		return 1
	}
	return 0
}

// Receiver reads RTP packets from a Shoal stream sent by a Sender.
type Receiver struct {
	o   *session.Object
	cfg ReceiverConfig

	mu      sync.Mutex
	wake    chan struct{}
	buf     []entry // by (epoch, ext)
	err     error   // how reading the stream ended
	offset  int64   // smallest arrival-minus-send time seen, ns
	offSet  bool
	ssrc    uint32
	epoch   uint64
	lastExt int64 // last extended sequence number received in the epoch
	relEp   uint64
	relExt  int64 // last released
	relSet  bool
	rtcpSub uint64 // RTCP packets buffered so far, their order
	stats   Stats
	hist    [2048]uint64 // added latency, 1 ms buckets (last: more)
	histN   uint64
}

// NewReceiver starts reading o, a stream sent by a Sender. It sets o's
// maximum age to the latency, so that Shoal gives up missing data when a
// player would, and delivers what follows at once.
func NewReceiver(o *session.Object, cfg ReceiverConfig) *Receiver {
	if cfg.Latency <= 0 {
		cfg.Latency = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Receiver{o: o, cfg: cfg, wake: make(chan struct{})}
	o.SetMaxAge(cfg.Latency)
	go r.pump()
	return r
}

// pump moves messages from the stream into the jitter buffer.
func (r *Receiver) pump() {
	for {
		m, err := r.o.ReadMessage(context.Background())
		var le *session.MessagesLostError
		switch {
		case errors.As(err, &le):
			r.mu.Lock()
			if r.histN > 0 {
				// Before the first packet it is only what was sent before
				// this receiver joined.
				r.stats.MessagesLost += uint64(le.Lost)
			}
			r.mu.Unlock()
			continue
		case err != nil:
			r.mu.Lock()
			r.err = err
			r.signalLocked()
			r.mu.Unlock()
			return
		}
		r.add(m, r.cfg.Now())
	}
}

func (r *Receiver) signalLocked() {
	close(r.wake)
	r.wake = make(chan struct{})
}

// add puts one message into the jitter buffer.
func (r *Receiver) add(m []byte, now time.Time) {
	if len(m) < headerLen {
		return
	}
	sent := int64(binary.BigEndian.Uint64(m))
	b := m[headerLen:]
	if IsRTCP(b) {
		r.addRTCP(b, sent)
		return
	}
	p := &rtp.Packet{}
	if err := p.Unmarshal(b); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	transit := now.UnixNano() - sent
	if !r.offSet || transit < r.offset {
		r.offset, r.offSet = transit, true
	}
	added := time.Duration(transit - r.offset)
	r.hist[min(int(added/time.Millisecond), len(r.hist)-1)]++
	r.histN++
	if added > r.cfg.Latency/2 {
		r.stats.Repaired++
	}
	// A new SSRC (the source restarted) starts a new epoch, played after
	// what is buffered of the old one.
	if r.histN == 1 || p.SSRC != r.ssrc {
		if r.histN > 1 {
			r.epoch++
		}
		r.ssrc, r.lastExt = p.SSRC, int64(p.SequenceNumber)
	} else {
		r.lastExt += int64(int16(p.SequenceNumber - uint16(r.lastExt)))
	}
	e := entry{epoch: r.epoch, ext: r.lastExt, pkt: p,
		due: time.Unix(0, sent+r.offset).Add(r.cfg.Latency)}
	if r.relSet && (e.epoch < r.relEp || e.epoch == r.relEp && e.ext <= r.relExt) {
		r.stats.Late++ // its place was given up already
		return
	}
	if now.After(e.due) {
		r.stats.Late++
		e.isLate = true
	}
	i, found := slices.BinarySearchFunc(r.buf, e, entry.cmp)
	if found {
		return // a duplicate
	}
	r.buf = slices.Insert(r.buf, i, e)
	r.signalLocked()
}

// addRTCP buffers an RTCP packet behind the last RTP packet that arrived
// before it, due when that would be played out.
func (r *Receiver) addRTCP(b []byte, sent int64) {
	r.mu.Lock()
	r.stats.RTCP++
	if r.cfg.OnRTCP == nil {
		r.mu.Unlock()
		return
	}
	if r.histN == 0 {
		r.mu.Unlock()
		r.cfg.OnRTCP(b)
		return
	}
	defer r.mu.Unlock()
	r.rtcpSub++
	e := entry{epoch: r.epoch, ext: r.lastExt, sub: r.rtcpSub, rtcp: slices.Clone(b),
		due: time.Unix(0, sent+r.offset).Add(r.cfg.Latency)}
	if r.relSet && (e.epoch < r.relEp || e.epoch == r.relEp && e.ext < r.relExt) {
		// Its place was played out already (a packet reordered behind
		// it): it goes out next.
		e.epoch, e.ext = r.relEp, r.relExt
	}
	i, _ := slices.BinarySearchFunc(r.buf, e, entry.cmp)
	r.buf = slices.Insert(r.buf, i, e)
	r.signalLocked()
}

// ReadPacket returns the next RTP packet in sequence order at its playout
// time. Packets still missing when a later one is due are skipped (and
// counted as lost). It returns io.EOF once the stream has ended and the
// buffer is empty.
func (r *Receiver) ReadPacket(ctx context.Context) (*rtp.Packet, error) {
	for {
		r.mu.Lock()
		now := r.cfg.Now()
		var wait time.Duration = -1
		if len(r.buf) > 0 {
			e := r.buf[0]
			if !now.Before(e.due) || r.err != nil {
				r.buf = r.buf[1:]
				if e.rtcp != nil {
					r.mu.Unlock()
					r.cfg.OnRTCP(e.rtcp)
					continue
				}
				if r.relSet && e.epoch == r.relEp && e.ext > r.relExt+1 {
					r.stats.Lost += uint64(e.ext - r.relExt - 1)
				}
				r.relEp, r.relExt, r.relSet = e.epoch, e.ext, true
				r.stats.Received++
				r.mu.Unlock()
				return e.pkt, nil
			}
			wait = e.due.Sub(now)
		} else if r.err != nil {
			err := r.err
			r.mu.Unlock()
			if err == io.EOF {
				return nil, io.EOF
			}
			return nil, err
		}
		ch := r.wake
		r.mu.Unlock()
		var timer <-chan time.Time
		var t *time.Timer
		if wait >= 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-ch:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// Stats returns the receiver's figures so far.
func (r *Receiver) Stats() Stats {
	r.mu.Lock()
	st := r.stats
	st.AddedP50, st.AddedP99 = r.percentile(0.50), r.percentile(0.99)
	r.mu.Unlock()
	if r.cfg.Session != nil {
		rs := r.cfg.Session.Stats().Receiver
		st.FECRecovered, st.NACKRecovered = rs.FECRecovered, rs.LateSource
	}
	return st
}

func (r *Receiver) percentile(q float64) time.Duration {
	if r.histN == 0 {
		return 0
	}
	want := uint64(q*float64(r.histN) + 0.5)
	var n uint64
	for i, c := range r.hist {
		n += c
		if n >= max(want, 1) {
			return time.Duration(i) * time.Millisecond
		}
	}
	return time.Duration(len(r.hist)) * time.Millisecond
}
