// Package receiver is the NORM receiver engine (RFC 5740 §5.2–5.3, §5.5.2):
// it tracks every sender it hears, rebuilds objects from source and parity
// symbols, asks for repair with NACKs timed by a randomized back-off and
// suppressed by what other receivers already asked, answers watermark
// requests and congestion-control probes, and reports what happened as
// events.
//
// Like package sender it is sans-I/O and deterministic: packets and the
// current time go in (HandlePacket), packets to send come out (Poll into a
// framing.Outbox) together with the next time it wants to be polled, and all
// randomness comes from Config.Rand.
package receiver

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/shoalnet/shoal/framing"
)

// SyncPolicy says which objects a receiver joining a session in progress
// tries to receive (RFC 5740 §5.2.1).
type SyncPolicy uint8

// Sync policies.
const (
	// SyncCurrent (the default) starts with the first object heard and
	// never NACKs for older ones.
	SyncCurrent SyncPolicy = iota
	// SyncAll also NACKs for older objects the sender may still hold; the
	// sender answers what it purged with NORM_CMD(SQUELCH).
	SyncAll
)

// ObjectInfo describes an object when it starts.
type ObjectInfo struct {
	Sender uint32
	Object uint16
	File   bool   // NORM_OBJECT_FILE (else data or stream)
	Stream bool   // NORM_OBJECT_STREAM: data arrives as EventStreamData
	Size   uint64 // bytes
	Info   []byte // NORM_INFO content if it arrived first, else nil
}

// Kind returns the object's type, as sender and session name it.
func (i ObjectInfo) Kind() framing.ObjectKind {
	switch {
	case i.File:
		return framing.ObjectFile
	case i.Stream:
		return framing.ObjectStream
	}
	return framing.ObjectData
}

// Config configures a Receiver. Zero values select the defaults given.
type Config struct {
	// NodeID identifies this receiver in NACKs and ACKs. Required.
	NodeID uint32
	// Rand supplies all randomness (back-off timers). If nil, a generator
	// seeded from NodeID is used.
	Rand *rand.Rand
	// Sync is the policy for joining a session in progress.
	Sync SyncPolicy
	// StreamMaxAge, if positive, bounds how long a stream's missing data
	// is waited for (see SetStreamMaxAge): the default for every stream.
	StreamMaxAge time.Duration
	// Silent receivers never send anything (one-way links); they rely on
	// the sender's proactive parity and repetition.
	Silent bool
	// TolerateLoss makes congestion feedback treat isolated single-packet
	// losses as random rather than as congestion (see
	// congestion.LossHistory.Tolerant): for radio and other lossy paths
	// where NORM-CC would otherwise hold the sender far below the
	// capacity. A queue that overflows still counts.
	TolerateLoss bool
	// UnicastFeedback sends NACKs and ACKs to the sender's address instead
	// of the group. Other receivers then cannot suppress on them.
	UnicastFeedback bool

	// Sink, if set, is asked for a destination when an object starts.
	// Returning a nil WriterAt (or a nil Sink) keeps the object in memory
	// and hands it over whole in EventCompleted; an error aborts the object.
	// Segments are written as blocks complete, in any order, each exactly
	// once.
	Sink func(ObjectInfo) (io.WriterAt, error)

	// MaxSenders bounds the senders tracked. A new sender beyond it takes
	// the place of one that has ended (EOT), else of the least recently
	// heard of those silent for a second (or four of their GRTTs) with no
	// object pending, else of
	// the one that sent the fewest bytes, a sender younger than a second
	// counted at its pace over a second (EventSenderGone, its objects
	// aborted with ErrSenderEvicted). So forged source ids cannot lock a real sender
	// out, nor push out one that pauses or has just started while new ids
	// keep arriving: they take each other's places. When all were heard at the
	// same instant, the new one is dropped with one EventSenderRejected.
	// 0 means 64.
	MaxSenders int
	// MaxObjects bounds the objects pending per sender; a new object
	// beyond it is not started but left to be NACKed and repaired once
	// older ones are done (Stats.ObjectsDeferred). A sender's object ids
	// also span at most 16*MaxObjects (at most 16,384): older pending
	// objects are aborted (ErrObjectLimit). 0 means 256, the objects a
	// Shoal sender's transmit cache holds by default: small objects go by
	// faster than a repair cycle, and one deferred costs a whole
	// retransmission.
	MaxObjects int
	// MaxBufferBytes bounds memory for objects kept in memory (taken as
	// their data arrives), partially received blocks (a symbol's worth for
	// each symbol received; their buffers, which grow by doubling, may take
	// up to twice that) and the bookkeeping of each object's blocks, over
	// all senders. Within the bound any
	// sender may use it all; when it is reached, every sender holding
	// memory is owed an equal share: one within its share gets room by
	// aborting objects of the sender furthest over its own, and an object
	// whose sender is over its share is aborted with ErrBufferLimit.
	// Completed objects the application still holds for delivery
	// (SetAppBytes) count too, and while the budget is full a new object
	// to be kept in memory, of at most half the budget, is not started but
	// left to be NACKed and repaired later (Stats.ObjectsDeferred).
	// 0 means 256 MiB.
	MaxBufferBytes int64
	// MaxBlocks bounds the partially received blocks held at once over
	// all senders, shared between senders as MaxBufferBytes is.
	// 0 means 4096.
	MaxBlocks int
	// SenderTimeout drops a sender not heard from for this long
	// (EventSenderGone), aborting its pending objects. 0 means 60 s.
	SenderTimeout time.Duration
	// RepairCycles is how many NACK cycles an object may go without
	// progress before it is aborted with ErrRepairTimeout. 0 means 20.
	RepairCycles int
	// UniformBackoff draws NACK back-off delays uniformly over the window
	// instead of from RFC 5740's truncated exponential distribution (timed,
	// by default, for the receivers that lack as much of a block as this
	// one does, see nack.BackoffGroup). It exists to show, in simulations,
	// what the exponential timers save: a uniform draw lets many more
	// receivers fire before the first NACK reaches them.
	UniformBackoff bool
	// SharedPayloads promises that a packet passed to HandlePacket is
	// never modified afterwards, so the receiver may keep its symbols by
	// reference instead of copying them: memory per partially received
	// block drops from the block's size to what is missing or short. It is
	// for simulations that hand one packet to thousands of receivers in
	// one process; a program reusing its receive buffers must leave it
	// false. With it, the slices a Sink is given may be packets other
	// receivers also hold, and must not be modified.
	SharedPayloads bool
	// Arena, with SharedPayloads, is memory every packet passed to
	// HandlePacket lies in, unchanged, for the receiver's lifetime: a
	// simulated network's. The receiver then keeps a symbol of a block
	// waiting for repair as a 4-byte position in it rather than as a
	// slice, which thousands of receivers in one process keep in less
	// memory, and the garbage collector need not scan. Stream objects,
	// and packets Find does not place, are kept as with SharedPayloads
	// alone. Ignored without SharedPayloads.
	Arena Arena
	// ConfirmHeld makes a watermark acknowledgement wait until the
	// application has confirmed, with Held, every object completed so
	// far: an acknowledgement then says the application has the data, not
	// only that it was decoded.
	ConfirmHeld bool
}

// Errors carried by EventAborted and returned by the Receiver.
var (
	ErrConfig        = errors.New("receiver: invalid configuration")
	ErrSquelched     = errors.New("receiver: sender no longer holds the object (squelched)")
	ErrRepairTimeout = errors.New("receiver: no repair progress")
	ErrSenderGone    = errors.New("receiver: sender gone")
	ErrSenderReset   = errors.New("receiver: sender restarted")
	ErrObjectLimit   = errors.New("receiver: too many pending objects")
	ErrBufferLimit   = errors.New("receiver: buffer limit reached")
	ErrBadObject     = errors.New("receiver: object parameters not supported")
	ErrSenderEvicted = errors.New("receiver: sender dropped to make room for another")
)

// Arena is memory that packets lie in, addressed by 32-bit positions (see
// Config.Arena).
type Arena interface {
	// Find returns the position of p's first byte if all of p lies in the
	// arena.
	Find(p []byte) (pos uint32, ok bool)
	// At returns the n bytes at position pos, which Find returned for a
	// slice at least n bytes long.
	At(pos uint32, n int) []byte
}

func (c *Config) setDefaults() error {
	if !c.SharedPayloads {
		c.Arena = nil
	}
	if c.NodeID == 0 || c.NodeID == 0xffffffff {
		return fmt.Errorf("%w: NodeID must be set and not NORM_NODE_ANY", ErrConfig)
	}
	if c.MaxSenders == 0 {
		c.MaxSenders = 64
	}
	if c.MaxObjects == 0 {
		c.MaxObjects = 256
	}
	if c.MaxBufferBytes == 0 {
		c.MaxBufferBytes = 256 << 20
	}
	if c.MaxBlocks == 0 {
		c.MaxBlocks = 4096
	}
	if c.SenderTimeout == 0 {
		c.SenderTimeout = 60 * time.Second
	}
	if c.RepairCycles == 0 {
		c.RepairCycles = 20
	}
	if c.Rand == nil {
		c.Rand = rand.New(rand.NewPCG(uint64(c.NodeID), 0x7e4d))
	}
	if c.MaxSenders < 1 || c.MaxObjects < 1 || c.MaxBufferBytes < 1 || c.MaxBlocks < 1 || c.RepairCycles < 1 || c.SenderTimeout < 0 {
		return fmt.Errorf("%w: limits must be positive", ErrConfig)
	}
	return nil
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventSenderNew: first packet from a sender.
	EventSenderNew EventKind = iota + 1
	// EventSenderReset: a known sender came back with a new instance id;
	// its pending objects were aborted (ErrSenderReset) and its state reset.
	EventSenderReset
	// EventSenderGone: a sender sent NORM_CMD(EOT) or was silent for
	// SenderTimeout; its pending objects were aborted.
	EventSenderGone
	// EventSenderRejected: a new sender was ignored because MaxSenders are
	// tracked already.
	EventSenderRejected
	// EventStarted: a new object; Info may follow in EventInfo.
	EventStarted
	// EventInfo: an object's NORM_INFO arrived.
	EventInfo
	// EventCompleted: an object arrived whole. Data holds it for objects
	// kept in memory (the receiver gives up its reference).
	EventCompleted
	// EventAborted: an object cannot be completed; Err says why.
	EventAborted
	// EventCommand: a NORM_CMD(APPLICATION) arrived; Data holds its
	// content (valid until the next call into the Receiver).
	EventCommand
)

// Event is something the application may want to know about.
type Event struct {
	Kind   EventKind
	Sender uint32
	Object uint16
	File   bool
	Stream bool // the object is a NORM_OBJECT_STREAM
	Size   uint64
	Info   []byte
	Data   []byte
	// MsgStart is, for EventStreamData, the offset in Data where a
	// message starts, or -1.
	MsgStart int
	// Lost is, for EventStreamGap, how many bytes of the stream were lost
	// before the data that follows (modulo 2^32: NORM's stream offsets
	// are 32-bit).
	Lost int64
	// InfoExt is, for EventInfo, the NORM_INFO's header extensions in wire
	// form (framing.Extensions), EXT_FTI included.
	InfoExt []byte
	Err     error
}

// Stats are a receiver's counters.
type Stats struct {
	Packets         uint64 // packets handed to HandlePacket
	Bytes           uint64
	BadPackets      uint64 // malformed, counted and dropped
	Duplicates      uint64 // symbols already held
	DataSymbols     uint64 // new source symbols received
	ParitySymbols   uint64 // new parity symbols received
	FECRecovered    uint64 // source symbols rebuilt from parity
	StreamExpired   uint64 // stream segments given up past the stream's maximum age
	LateSource      uint64 // new source symbols that came after data of a later block: NACK repairs, or reordering
	NacksSent       uint64
	NacksSuppressed uint64 // NACK cycles that found everything already requested
	AcksSent        uint64
	PaceReports     uint64 // unsolicited reports that this receiver falls behind
	ObjectsDone     uint64
	ObjectsAborted  uint64
	BufferBytes     int64 // memory held now for objects, blocks and their bitmaps

	// Hostile or faulty peers (anyone on the group can send anything).
	SendersRejected uint64 // packets dropped from new senders: MaxSenders tracked, none evictable
	SendersEvicted  uint64 // senders dropped to make room for a new one (see Config.MaxSenders)
	QuotaRefused    uint64 // objects aborted because their sender was over its share of the buffer or blocks
	Preempted       uint64 // objects aborted to give another sender its share
	WindowClamped   uint64 // pending objects aborted because their sender's object ids moved on too far
	BlocksAhead     uint64 // symbols dropped for blocks too far ahead of their object's oldest incomplete one
	ObjectsDeferred uint64 // packets of new objects left for later repair: no room (MaxObjects, MaxBufferBytes)
	AppBytes        int64  // completed objects held for the application (SetAppBytes)
}
