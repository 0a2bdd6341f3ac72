// Package sender is the NORM sender engine (RFC 5740 §5.1–5.4): it turns
// objects into paced NORM_DATA, answers NACKs with repairs (fresh FEC parity
// first), probes the group round-trip time, flushes, squelches and collects
// positive acknowledgements.
//
// The engine is sans-I/O and deterministic: it never touches a socket, a
// goroutine or the wall clock. The caller feeds it packets and the current
// time (HandlePacket), collects what it wants sent (Poll into a
// framing.Outbox) and calls Poll again no later than the time Poll returned.
// Randomness comes from Config.Rand. Given a seeded Rand, the same inputs
// give the same packets, which is what lets tests run a thousand receivers
// in virtual time and lets package session run the same engine over real
// sockets.
package sender

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shoalnet/shoal/congestion"
	"github.com/shoalnet/shoal/fec"
)

// Config configures a Sender. The zero value of every field but NodeID
// selects the default given in its comment.
type Config struct {
	// NodeID identifies this sender in every message (NORM's source_id).
	// Required; conventionally an IPv4 address of the host.
	NodeID uint32
	// InstanceID tells receivers that a sender restarted. If zero, one is
	// drawn from Rand, which is what a restarting sender wants: receivers
	// take the objects of an instance they already heard as old news.
	InstanceID uint16
	// Rand supplies all randomness, the instance id and first object id
	// included. If nil, a generator seeded from crypto/rand is used, so
	// that every start is a new instance with fresh object ids; give a
	// seeded one for reproducible runs (the engine is deterministic then).
	Rand *rand.Rand

	// Rate is the transmit rate in bytes per second (payload plus NORM
	// headers). 0 means DefaultRate; with CC set it is the rate to start
	// from instead (0: CC.StartRate or its default). Negative is an error.
	Rate float64
	// CC, if set, turns on NORM-CC congestion control (RFC 5740 §5.5):
	// the rate follows the slowest receiver's TCP-friendly rate between
	// CC.MinRate and CC.MaxRate (see congestion.Controller for how Shoal
	// starts fast, rides out lost feedback and ends cleanly). CC.SegmentSize
	// defaults to SegmentSize. Nil means a fixed Rate (SetRate changes it).
	CC *congestion.Config
	// Burst is how many bytes the pacer may send back to back. 0 means 16
	// segments or 2 ms worth of Rate, whichever is more: enough to fill
	// batched writes, and to ride out the millisecond a timer wake-up can
	// take, without which fast senders fall short of their rate.
	Burst int
	// PacketOverhead is the bytes a layer below the engine adds to every
	// packet after Poll (the session's EXT_AUTH, see package secure). The
	// pacer and congestion control charge them too, so that Rate is the
	// rate on the wire; Stats.Bytes counts them. 0 means none; at most 1024.
	PacketOverhead int

	// SegmentSize is the payload bytes per NORM_DATA. 0 means 1400.
	SegmentSize int
	// BlockLen is the number of source symbols per FEC block (k). 0 means
	// 64. Parity+BlockLen may not exceed 255 (FEC id 5).
	BlockLen int
	// Parity is the number of parity symbols per block the sender may
	// compute for repair (p). 0 means no FEC: repairs resend source
	// symbols.
	Parity int
	// AutoParity is how many parity symbols per block are sent
	// proactively, before any NACK (at most Parity).
	AutoParity int

	// Backoff is the NACK back-off factor advertised to receivers (their
	// NACKs wait up to Backoff × GRTT so that they suppress each other).
	// 0 means 4; use a negative value for 0 (no back-off, for tiny
	// groups). With AdaptiveBackoff it is the factor for a large group.
	Backoff int
	// AdaptiveBackoff makes the advertised back-off factor follow the
	// receivers the sender hears (NACK and ACK source ids over the last
	// one to two seconds): Backoff for sixteen or more, or for a group not
	// heard yet, down to 2 for fewer (see nack.GroupBackoff). A small group
	// has little to suppress, and every repair cycle (back-off, the
	// sender's aggregation window, the receivers' hold-off) shortens with
	// the factor. Off by default: NRL's libnorm 1.5.9 receivers
	// intermittently fail to complete a stream when the factor is not 4
	// (interop TestShoalToLibnorm), which is not understood yet.
	AdaptiveBackoff bool
	// GroupSize is the group size estimate advertised for back-off. 0
	// means 1000. (It stays fixed: NRL's libnorm 1.5.9 receivers stop
	// completing streams when it changes to a small value mid-session.)
	GroupSize float64
	// GRTT is the initial group round-trip time estimate. 0 means 500 ms;
	// it is measured from receiver feedback from then on.
	GRTT time.Duration
	// GRTTMax bounds the estimate. 0 means 10 s. (The lower bound is 1 ms,
	// and never less than one segment's transmission time at Rate.)
	GRTTMax time.Duration
	// ProbeInterval bounds how often GRTT probes (NORM_CMD(CC)) go out. 0
	// means 1 s; probes go at twice the GRTT when that is shorter.
	ProbeInterval time.Duration

	// RobustFactor is how many times end-of-transmission flushes and
	// watermark requests are repeated (RFC 5740's NORM_ROBUST_FACTOR). 0
	// means 20.
	RobustFactor int
	// FlushTime is the least time the RobustFactor end-of-transmission
	// flushes, or watermark requests, take. They go two GRTTs apart (RFC
	// 5740), further when that would end sooner: on a LAN two GRTTs are a
	// few milliseconds, and a receiver whose process stalls longer than
	// all of them (CPU starvation, swapping, a debugger) would never hear
	// that data it missed was sent. 0 means 1 s; negative means no floor.
	// A closing session waits for it.
	FlushTime time.Duration

	// CacheObjects and CacheBytes bound the transmit cache: objects kept
	// for repair after they were sent. Beyond either bound the oldest sent
	// objects are purged (with an EventPurged). 0 means 256 objects and
	// 1 GiB; CacheObjects may not exceed 32768.
	CacheObjects int
	CacheBytes   int64

	// AckingNodes lists receivers whose positive acknowledgement a
	// watermark (SetWatermark) waits for. TrackReceivers adds every
	// receiver heard from (NACK or ACK) to that list.
	AckingNodes    []uint32
	TrackReceivers bool

	// StreamTimeout is how long a receiver may confirm nothing new of a
	// stream's data it lacks before it is dropped from flow control
	// (EventSlowReceiver) and the writer stops waiting for it. With
	// acking nodes it bounds object flow control the same way (see
	// ObjectPartial): an acking node that confirms no object for this
	// long while queueing waits is no longer waited for (and fails the
	// final watermark if it lacks objects). 0 means 10 s; negative means
	// wait for ever.
	StreamTimeout time.Duration
	// StreamPartial turns stream flow control off: ring slots are reused
	// once sent, whoever still needs them, and receivers that fall behind
	// get gaps. For live media where late data is worthless.
	StreamPartial bool
	// ObjectPartial turns object flow control off: with acking nodes, a
	// sent object normally leaves the transmit cache only once every one
	// of them confirmed holding it (queueing waits meanwhile; a node that
	// confirms nothing new for StreamTimeout is dropped with an
	// EventSlowReceiver). With ObjectPartial the oldest sent object is
	// purged whenever room is needed, as without acking nodes.
	ObjectPartial bool

	// MaxNodes bounds the receivers the sender keeps track of: AckingNodes
	// plus, with TrackReceivers, those heard, and, separately, those stream
	// flow control waits for. Any host on the group can send feedback under
	// any node id, so when the table is full, receivers heard from (not
	// AckingNodes) that have been silent for a long while (10 s,
	// StreamTimeout or four GRTTs, whichever is longest) are dropped
	// (Stats.NodesEvicted), except those a pending watermark or stream
	// still waits for; if that frees no room, new ids are not tracked
	// (Stats.NodesRefused). Their NACKs are still answered. 0 means 1024;
	// AckingNodes may not hold more.
	MaxNodes int
}

// DefaultRate is the transmit rate of a Config without Rate or CC: 10 MB/s
// (80 Mbit/s).
const DefaultRate = 10e6

// Errors returned by the Sender.
var (
	ErrConfig        = errors.New("sender: invalid configuration")
	ErrCacheFull     = errors.New("sender: transmit cache full of unsent objects")
	ErrClosed        = errors.New("sender: closed")
	ErrObjectSize    = errors.New("sender: object too large")
	ErrInfoTooLarge  = errors.New("sender: info larger than one segment")
	ErrUnknownObject = errors.New("sender: no such object in the transmit cache")
)

func (c *Config) setDefaults() error {
	if c.NodeID == 0 || c.NodeID == 0xffffffff {
		return fmt.Errorf("%w: NodeID must be set and not NORM_NODE_ANY", ErrConfig)
	}
	if c.Rate == 0 && c.CC == nil {
		c.Rate = DefaultRate
	}
	if !(c.Rate > 0) && !(c.CC != nil && c.Rate == 0) {
		return fmt.Errorf("%w: Rate must not be negative", ErrConfig)
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.SegmentSize, 1400)
	def(&c.BlockLen, 64)
	def(&c.RobustFactor, 20)
	def(&c.CacheObjects, 256)
	def(&c.MaxNodes, 1024)
	switch {
	case c.Backoff == 0:
		c.Backoff = 4
	case c.Backoff < 0:
		c.Backoff = 0
	}
	if c.GroupSize == 0 {
		c.GroupSize = 1000
	}
	if c.GRTT == 0 {
		c.GRTT = 500 * time.Millisecond
	}
	if c.GRTTMax == 0 {
		c.GRTTMax = 10 * time.Second
	}
	switch {
	case c.FlushTime == 0:
		c.FlushTime = time.Second
	case c.FlushTime < 0:
		c.FlushTime = 0
	}
	switch {
	case c.StreamTimeout == 0:
		c.StreamTimeout = 10 * time.Second
	case c.StreamTimeout < 0:
		c.StreamTimeout = 0
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = time.Second
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 1 << 30
	}
	if c.Rand == nil {
		// Not seeded from NodeID: a restarted sender would reuse its
		// instance and object ids, and receivers would ignore its objects
		// as already finished.
		var seed [16]byte
		_, _ = crand.Read(seed[:]) // documented never to fail
		c.Rand = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	}
	switch {
	case c.SegmentSize < 64 || c.SegmentSize > 65000:
		return fmt.Errorf("%w: SegmentSize must be 64..65000", ErrConfig)
	case c.PacketOverhead < 0 || c.PacketOverhead > 1024:
		return fmt.Errorf("%w: PacketOverhead must be 0..1024", ErrConfig)
	case c.BlockLen < 1 || c.BlockLen > fec.MaxBlockLen:
		return fmt.Errorf("%w: BlockLen must be 1..255", ErrConfig)
	case c.Parity < 0 || c.BlockLen+c.Parity > fec.MaxSymbols:
		return fmt.Errorf("%w: Parity must be >= 0 with BlockLen+Parity <= 255", ErrConfig)
	case c.AutoParity < 0 || c.AutoParity > c.Parity:
		return fmt.Errorf("%w: AutoParity must be 0..Parity", ErrConfig)
	case c.Backoff > 15:
		return fmt.Errorf("%w: Backoff must be at most 15", ErrConfig)
	case c.RobustFactor < 1, c.CacheObjects < 1, c.CacheBytes < 1:
		return fmt.Errorf("%w: RobustFactor and cache bounds must be positive", ErrConfig)
	case c.CacheObjects > 1<<15:
		// Object ids are 16-bit serial numbers: more than half the space in
		// flight would make old and new ids ambiguous.
		return fmt.Errorf("%w: CacheObjects must be at most 32768", ErrConfig)
	case c.MaxNodes < 0 || len(c.AckingNodes) > c.MaxNodes:
		return fmt.Errorf("%w: AckingNodes lists more than MaxNodes nodes", ErrConfig)
	case c.GRTT < 0 || c.GRTTMax < time.Millisecond:
		return fmt.Errorf("%w: GRTT bounds out of range", ErrConfig)
	}
	return nil
}
