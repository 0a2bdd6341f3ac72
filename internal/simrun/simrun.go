// Package simrun runs one Shoal sender and many receivers through the
// simulated multicast network of package simnet, in virtual time, and
// measures the transfer: whether every receiver got every byte, how many
// NACKs and repairs it took. Engine tests and the `bench sim` command use it.
package simrun

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/internal/simnet"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/sender"
)

// Group is the simulated session's multicast group.
var Group = netip.MustParseAddrPort("239.255.1.1:6003")

// Object is one object the sender sends.
type Object struct {
	Size int64
	File bool   // NORM_OBJECT_FILE through a ReaderAt, else data
	Info []byte // optional NORM_INFO
}

// Scenario is one simulated transfer.
type Scenario struct {
	Seed      uint64
	Receivers int
	Objects   []Object
	Stream    *Stream // a stream sent after the objects

	// Loss is the independent loss on each receiver's downlink; Shared
	// the loss on the sender's uplink, seen by every receiver. Burst, if
	// set, replaces Loss by Gilbert-Elliott burst loss.
	Loss   float64
	Shared float64
	Burst  *simnet.GilbertElliott
	// FeedbackLoss is the loss on receivers' uplinks (their NACKs and ACKs).
	FeedbackLoss float64
	Delay        time.Duration // one-way, each link; 0 means 5 ms
	Jitter       time.Duration
	Duplicate    float64

	Sender   sender.Config   // NodeID and Rate default if zero
	Receiver receiver.Config // NodeID is set per receiver

	// Late receivers (the last Late of Receivers) join At after the start.
	Late   int
	LateAt time.Duration

	// RestartReceiver, if non-zero, replaces receiver RestartReceiver-1's
	// engine by a new one (all state lost) at RestartAt.
	RestartReceiver int
	RestartAt       time.Duration
	// RestartSenderAt, if non-zero, replaces the sender by a new instance
	// at that time, which sends the objects again.
	RestartSenderAt time.Duration
	// Storm adds a faulty receiver that multicasts a NACK for every object
	// whole every StormEvery (default 1 ms) from the start.
	Storm      bool
	StormEvery time.Duration
	// Hostile adds a host on the group running that attack from the
	// start (see HostileKind). Receivers ignore what other senders than
	// the real one deliver.
	Hostile HostileKind
	// OutageFrom..OutageTo: receiver 0's downlink loses everything.
	OutageFrom, OutageTo time.Duration
	// Watermark makes the sender ask every receiver (plus ExtraAckers
	// that do not exist) to acknowledge the last object.
	Watermark   bool
	ExtraAckers []uint32

	// WaitSender keeps the run going after the receivers are done until
	// the sender has flushed and closed (for its acknowledgement events).
	WaitSender bool

	// SlowRx receivers (the first ones) handle packets at only SlowRxRate
	// bytes per second, as a receiver short of CPU does: what arrives
	// faster waits in a socket buffer of SlowRxBuffer bytes (0 means
	// 4 MiB), and what finds it full is dropped (Result.SocketDrops).
	SlowRx       int
	SlowRxRate   float64
	SlowRxBuffer int
	// StallFrom..StallTo: receiver 0's process stalls (swapped out,
	// stopped in a debugger): it handles no packet, runs no timer and
	// sends nothing. What arrives meanwhile waits in its socket buffer
	// (SlowRxBuffer bytes, 0 meaning 4 MiB; the rest is dropped) and is
	// handled at once when the stall ends.
	StallFrom, StallTo time.Duration

	// UniformTimers makes every receiver draw its NACK back-off uniformly
	// (receiver.Config.UniformBackoff), for comparison with the default
	// exponential timers.
	UniformTimers bool

	// Limit bounds virtual time; 0 means 10 minutes.
	Limit time.Duration
	// Tap, if set, sees every packet delivered to a receiver.
	Tap func(rx int, p simnet.Packet)
}

// Result is what a Run measured.
type Result struct {
	Delivered  int           // receivers that got every object intact
	Aborted    int           // objects aborted at receivers
	Virtual    time.Duration // virtual time until the last receiver finished
	Sender     sender.Stats
	Receivers  []receiver.Stats
	Events     [][]receiver.Event // per receiver, kinds and errors only
	SenderEvts []sender.Event
	// Block accounting for the repair metrics: a lossy block is one that
	// some receiver missed a first-pass symbol of.
	LossyBlocks   int
	MaxMissedSum  int // Σ over lossy blocks of the largest number of symbols one receiver missed
	RepairSymbols int // data symbols sent after their first transmission
	// RepairRounds is Σ over lossy blocks of the bursts of repair symbols
	// the sender sent for the block (bursts more than 5 ms apart).
	RepairRounds int
	NacksSent    int
	StreamGaps   int // stream gaps reported by receivers
	// Framed streams: messages delivered and reported lost, summed over
	// the receivers, and the most a paced writer was late (held back).
	Messages, MessagesLost int
	WriterLate             time.Duration
	MaxMsgDelay            time.Duration // the longest a message took from its write to a receiver
	MsgDelays              []uint64      // messages delivered (all receivers), by that delay in ms; the last bucket: longer
	SocketDrops            int           // packets that found a slow receiver's socket buffer full
	MaxBacklog             time.Duration // the longest a packet waited in a slow receiver's socket
	Stop                   simnet.StopReason
	HostileSent            int      // packets the Hostile node sent
	Errors                 []string // content or protocol errors seen

	// Finished is, per receiver, when it finished (0: it did not).
	Finished []time.Duration
}

// Pattern is the content of object obj at offset off: cheap to compute
// anywhere, so receivers verify every byte without keeping a copy.
func Pattern(seed uint64, obj int, off int64) byte {
	return byte(patternWord(seed, obj, off/8) >> (8 * (off % 8)))
}

func patternWord(seed uint64, obj int, w int64) uint64 {
	x := uint64(w)*0x9E3779B97F4A7C15 + seed*0xBF58476D1CE4E5B9 + uint64(obj)*0x94D049BB133111EB
	x ^= x >> 31
	x *= 0xD6E8FEB86659FD93
	return x ^ x>>32
}

// fillPattern writes the content of object obj from offset off into b, a
// word at a time.
func fillPattern(b []byte, seed uint64, obj int, off int64) {
	for i := 0; i < len(b); {
		o := off + int64(i)
		if o%8 == 0 && len(b)-i >= 8 {
			binary.LittleEndian.PutUint64(b[i:], patternWord(seed, obj, o/8))
			i += 8
			continue
		}
		b[i] = Pattern(seed, obj, o)
		i++
	}
}

type patternReader struct {
	seed uint64
	obj  int
	size int64
}

func (p patternReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > p.size {
		return 0, errors.New("simrun: read past the object")
	}
	fillPattern(b, p.seed, p.obj, off)
	return len(b), nil
}

// verifySink checks every write against the pattern and that the writes
// cover the object exactly once.
type verifySink struct {
	seed    uint64
	obj     int
	size    int64
	written int64
	err     error
	scratch []byte
	want    []byte // if not nil, the whole object's content, shared by receivers
}

func (v *verifySink) WriteAt(b []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(b)) > v.size {
		v.err = fmt.Errorf("write [%d,%d) outside object of %d bytes", off, off+int64(len(b)), v.size)
		return 0, v.err
	}
	var want []byte
	if v.want != nil {
		want = v.want[off : off+int64(len(b))]
	} else {
		if cap(v.scratch) < len(b) {
			v.scratch = make([]byte, len(b))
		}
		want = v.scratch[:len(b)]
		fillPattern(want, v.seed, v.obj, off)
	}
	if !bytes.Equal(b, want) {
		v.err = fmt.Errorf("object %d: bytes at [%d,%d) differ", v.obj, off, off+int64(len(b)))
		return 0, v.err
	}
	v.written += int64(len(b))
	return len(b), nil
}

// outage loses everything between from and to, and otherwise defers to
// base.
type outage struct {
	from, to time.Time
	base     simnet.LossModel
}

func (o outage) NewLoss(rng *rand.Rand) simnet.Loss {
	var b simnet.Loss
	if o.base != nil {
		b = o.base.NewLoss(rng)
	}
	return &outageLoss{o: o, base: b}
}

type outageLoss struct {
	o    outage
	base simnet.Loss
}

func (l *outageLoss) Lost(now time.Time, size int) bool {
	if !now.Before(l.o.from) && now.Before(l.o.to) {
		return true
	}
	return l.base != nil && l.base.Lost(now, size)
}

// PatternReader returns a ReaderAt of object obj's pattern content, size
// bytes, for real transfers that should verify like simulated ones.
func PatternReader(seed uint64, obj int, size int64) io.ReaderAt {
	return patternReader{seed: seed, obj: obj, size: size}
}

// VerifySink checks writes against the pattern of object obj (see
// PatternReader) without keeping the data.
type VerifySink struct{ v verifySink }

// NewVerifySink returns a sink for object obj of size bytes.
func NewVerifySink(seed uint64, obj int, size int64) *VerifySink {
	return &VerifySink{verifySink{seed: seed, obj: obj, size: size}}
}

// WriteAt checks b against the pattern at off.
func (s *VerifySink) WriteAt(b []byte, off int64) (int, error) { return s.v.WriteAt(b, off) }

// Result returns the first mismatch, or an error if the writes did not
// cover the object exactly.
func (s *VerifySink) Result() error {
	if s.v.err != nil {
		return s.v.err
	}
	if s.v.written != s.v.size {
		return fmt.Errorf("%d of %d bytes written", s.v.written, s.v.size)
	}
	return nil
}
