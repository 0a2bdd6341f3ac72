package sender

import (
	"errors"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventSent: all of an object's data (and auto parity) has been sent
	// once; it stays in the transmit cache for repair.
	EventSent EventKind = iota + 1
	// EventPurged: an object left the transmit cache; later NACKs for it
	// are answered with NORM_CMD(SQUELCH).
	EventPurged
	// EventObjectError: an object could not be read (Err says why) and was
	// abandoned.
	EventObjectError
	// EventAck: a node acknowledged the watermark (Err nil) or did not
	// answer RobustFactor requests (Err is ErrNoAck).
	EventAck
	// EventWatermark: every node of the watermark has answered or been
	// given up on.
	EventWatermark
	// EventFlushed: the end-of-transmission flush finished: nothing is
	// queued and no NACK arrived for RobustFactor flush intervals.
	EventFlushed
	// EventClosed: after Close, everything was sent and flushed and the
	// sender announced NORM_CMD(EOT).
	EventClosed
	// EventSlowReceiver: under congestion control, receiver Node reported
	// less than CC.MinRate for CC.SlowReceiverTimeout and no longer limits
	// the rate; or it held a stream's writer back for StreamTimeout and no
	// longer holds back stream Object. It still gets repairs; it may not
	// keep up.
	EventSlowReceiver
)

// ErrNoAck is the error of an EventAck for a node that did not acknowledge.
var ErrNoAck = errors.New("sender: no acknowledgement")

// Event is something the application may want to know about.
type Event struct {
	Kind   EventKind
	Object uint16 // the object concerned (Sent, Purged, ObjectError, Watermark)
	Node   uint32 // the receiver concerned (Ack)
	Err    error
}

// Stats are a sender's counters.
type Stats struct {
	Packets         uint64 // packets handed to Poll's outbox
	Bytes           uint64 // their bytes, with Config.PacketOverhead each
	DataSymbols     uint64 // new source symbols
	AutoParity      uint64 // proactive parity symbols
	Messages        uint64 // whole messages written with WriteMessage
	StaleSkipped    uint64 // stream segments not sent: older than the stream's maximum age
	StaleRefused    uint64 // repair requests refused: data older than the stream's maximum age
	TimedBlocks     uint64 // stream blocks closed on time (SetStreamBlockTime)
	PaddingSegments uint64 // padding segments that closed them
	RepairSource    uint64 // source symbols resent for repair
	RepairParity    uint64 // parity symbols sent for repair
	InfoSent        uint64 // NORM_INFO messages
	NacksReceived   uint64
	AcksReceived    uint64
	Squelches       uint64
	Flushes         uint64
	Probes          uint64
	BadPackets      uint64 // unparsable packets given to HandlePacket
	AggregateWiden  uint64 // NACK requests widened because aggregation tables were full
	CCFeedback      uint64 // congestion control reports received (EXT_CC)
	PaceReports     uint64 // reports of receivers falling behind (EXT_PACE)
	PaceCuts        uint64 // times such a report lowered the rate
	// Stream and object flow control: watermark requests sent, receivers
	// not tracked because the table was full, how long writers (or
	// queueing, for objects) were held back in all, and the receiver that
	// holds the sender back now (0: none).
	FlowRequests     uint64
	FlowNodesRefused uint64
	FlowBlocked      time.Duration
	FlowLimiter      uint32
	// FlowWindow is the open stream's window: segments written and not
	// yet confirmed by every receiver flow control waits for (what the
	// writer may not overwrite).
	FlowWindow uint64

	// Signs of faulty or hostile receivers (any host on the group can send
	// NACKs and ACKs). None of them costs the sender more than the state
	// it holds.
	BadRequests    uint64 // NACKs holding repair requests that made no sense (those were skipped)
	RepairsClamped uint64 // block ranges reaching past the blocks sent, cut to them
	RepairsMerged  uint64 // repair requests merged into an identical or wider repair still queued
	RepairsDropped uint64 // repair requests dropped because the repair queue was full (receivers ask again)
	RepairYields   uint64 // new data packets sent ahead of queued repairs (see Sender's repair share)
	RepairsBulk    uint64 // repair packets sent for requests beyond their node's repair budget, when nothing else was to send
	NacksBulk      uint64 // NACKs whose repairs were left for when nothing else is to send: their node asked for more than its budget
	NacksDeferred  uint64 // NACKs not acted on because their node had used its share of repairs while new data waited
	NacksCut       uint64 // NACKs acted on only in part, for the same reason (the rest is asked again later)
	NodesRefused   uint64 // feedback packets from receivers left untracked because MaxNodes were tracked already
	NodesEvicted   uint64 // tracked receivers (acking or stream flow) dropped after a long silence to make room for new ones
	GRTT           time.Duration
	Rate           float64 // bytes per second
	// CLR is the current limiting receiver under congestion control (0 if
	// none), and SlowStart whether it has seen no loss yet.
	CLR       uint32
	SlowStart bool
	// PaceLimit is the rate (bytes per second) that receivers falling
	// behind hold the sender to, below the configured or congestion
	// controlled one, or 0 when none does; PaceNode is the receiver that
	// set it last.
	PaceLimit float64
	PaceNode  uint32
}
