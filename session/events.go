package session

import (
	"time"

	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/secure"
	"github.com/shoalnet/shoal/sender"
)

// Event is something that happened in a session: one of the types below.
// Read them from Session.Events.
type Event interface{ event() }

// SenderJoined: a sender was heard for the first time.
type SenderJoined struct{ Node NodeID }

// SenderReset: a known sender restarted (new instance); what it had in
// flight was aborted.
type SenderReset struct{ Node NodeID }

// SenderGone: a sender ended its session (EOT) or fell silent.
type SenderGone struct{ Node NodeID }

// SenderRejected: a sender was ignored because too many are tracked.
type SenderRejected struct{ Node NodeID }

// ObjectStarted: an object from another sender started arriving.
type ObjectStarted struct{ ObjectInfo }

// ObjectCompleted: a received object is whole.
type ObjectCompleted struct{ ObjectInfo }

// ObjectAborted: a received object cannot be completed.
type ObjectAborted struct {
	ObjectInfo
	Err error
}

// StreamGap: part of a received stream was lost for good.
type StreamGap struct {
	ObjectInfo
	Lost int64 // bytes lost (see GapError)
}

// CommandReceived: an application command (NORM_CMD(APPLICATION)).
type CommandReceived struct {
	Sender  NodeID
	Content []byte
}

// ObjectSent: all of an object this session sends went out once.
type ObjectSent struct{ ID ObjectID }

// ObjectPurged: an object this session sent left its transmit cache.
type ObjectPurged struct{ ID ObjectID }

// AckReceived: a receiver acknowledged a watermark (Err nil) or was given
// up on.
type AckReceived struct {
	ID   ObjectID
	Node NodeID
	Err  error
}

// Flushed: everything sent was flushed and no repair was asked for.
type Flushed struct{}

// RateChanged: the send rate changed.
type RateChanged struct{ Rate float64 }

// SlowReceiver: receiver Node no longer holds the sender back. Under
// congestion control it stayed below CC.MinRate for
// CC.SlowReceiverTimeout (see congestion.Config.SlowReceiverTimeout); or
// stream or object flow control waited sender.Config.StreamTimeout for it
// to confirm anything new, and goes on without it (it will miss data, and
// a watermark it lacks objects for fails).
type SlowReceiver struct{ Node NodeID }

func (SenderJoined) event()    {}
func (SenderReset) event()     {}
func (SenderGone) event()      {}
func (SenderRejected) event()  {}
func (ObjectStarted) event()   {}
func (ObjectCompleted) event() {}
func (ObjectAborted) event()   {}
func (StreamGap) event()       {}
func (CommandReceived) event() {}
func (ObjectSent) event()      {}
func (ObjectPurged) event()    {}
func (AckReceived) event()     {}
func (Flushed) event()         {}
func (RateChanged) event()     {}
func (SlowReceiver) event()    {}

// Stats is a snapshot of a session's counters.
type Stats struct {
	PacketsSent, BytesSent         uint64
	PacketsReceived, BytesReceived uint64
	NacksSent, NacksReceived       uint64
	NacksSuppressed                uint64
	RepairsSent                    uint64 // repair symbols sent
	FECRecovered                   uint64 // source symbols rebuilt from parity
	// InjectedTxLoss and InjectedRxLoss count the datagrams a LossConn in
	// Config.Conn dropped. Those dropped on sending count in PacketsSent
	// too; those dropped on receiving do not count in PacketsReceived.
	InjectedTxLoss, InjectedRxLoss uint64
	SendErrors                     uint64
	EventsDropped                  uint64
	GRTT                           time.Duration
	Rate                           float64 // bytes per second
	ReadBuffer, WriteBuffer        int     // socket buffer sizes granted
	GSO                            bool    // UDP segmentation offload in use
	// Coalesced counts the datagrams the kernel handed over merged with
	// others of their flow (UDP GRO): each run costs one read, not one per
	// datagram.
	Coalesced uint64
	Sender    sender.Stats
	Receiver  receiver.Stats
	Security  secure.Stats // Config.Security's refusals, as SecurityStats (secure.go)
}
