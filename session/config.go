package session

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/shoalnet/shoal/framing"
	"github.com/shoalnet/shoal/receiver"
	"github.com/shoalnet/shoal/secure"
	"github.com/shoalnet/shoal/sender"
)

// Config configures a Session. Only Group is required; every other field's
// zero value selects the default its comment gives.
type Config struct {
	// Group is the multicast group and port of the session, e.g.
	// 239.255.1.1:6003 or [ff15::6003]:6003. Required.
	Group netip.AddrPort
	// Interface names the interface to join and send on. Empty means the
	// system's choice (the route to the group).
	Interface string
	// Source, if set, makes the session source-specific (SSM): it joins
	// (Source, Group) and accepts packets from Source only.
	Source netip.Addr
	// AllowReserved allows a group in 224.0.0.0/24 or a link-local IPv6
	// control group, which are otherwise refused.
	AllowReserved bool

	// NodeID identifies this node in NORM messages; every node of a group
	// needs its own. 0 means a random id, different for every session, so
	// several sessions on one host (a sender and a receiver, or two
	// receivers) work. Set it where a stable id matters: to be named in
	// another sender's Sender.AckingNodes, or to keep one identity across
	// restarts. NORM's custom, which the reference implementation follows,
	// is the host's IPv4 address; it suits one session per host only.
	NodeID uint32
	// TTL is the multicast TTL (IPv4) or hop limit (IPv6). 0 means 1: the
	// local subnet. See the package documentation for scopes.
	TTL int
	// DisableLoopback stops this host's other sessions from receiving what
	// this one sends. By default they do, as the kernel does.
	DisableLoopback bool
	// ReadBuffer and WriteBuffer are the socket buffer sizes to ask for.
	// 0 means 4 MiB each; the sizes granted are in Stats.
	ReadBuffer, WriteBuffer int
	// DisableGSO turns off UDP segmentation offload, which the session
	// otherwise uses where the kernel supports it (Linux).
	DisableGSO bool

	// Sender configures sending; see package sender for each field. The
	// session fills in NodeID and Rand. Rate 0 means 10 MB/s (80 Mbit/s),
	// or with CC set the congestion controller's start rate (CC.StartRate,
	// whose 0 means 1 Mbit/s).
	Sender sender.Config
	// Receiver configures receiving; see package receiver. The session
	// fills in NodeID, Rand and Sink.
	Receiver receiver.Config
	// Dir, if set, is where received file objects are written: as a
	// temporary file, renamed to the sender's info (a relative path,
	// checked) when complete. Without Dir, files are kept in memory like
	// data objects.
	Dir string
	// FileSink, if set, is asked for a destination for every received file
	// object instead (it wins over Dir).
	FileSink func(ObjectInfo) (io.WriterAt, error)

	// Security, if set, authenticates every packet this session sends with
	// a group key and/or a signature, optionally encrypts payloads, and
	// drops every received packet that fails its checks or replays an old
	// one, before the engines see it (see package secure; nodes need
	// clocks within Security.MaxSkew). Every member of the group needs
	// it. Nil, the default, leaves packets byte for byte as the reference
	// implementation sends them, and drops received packets that carry
	// EXT_AUTH. SecurityStats counts what was refused.
	Security *secure.Config

	// TxLoss and RxLoss drop a share of the packets sent or received, for
	// tests and benchmarks: reproducible with the same Seed.
	TxLoss, RxLoss Loss

	// Logger receives the session's log; nil means silent.
	Logger *slog.Logger
	// Seed seeds the engines' randomness (back-off timers, instance id)
	// and loss injection. 0 means a random seed.
	Seed uint64
	// Events, if positive, is the capacity of the Events channel (default
	// 1024). Events that find it full are counted and dropped.
	Events int
	// MaxAccept is no longer used: objects wait for Accept without a
	// bound on their count (see Session.Accept for the memory bound).
	//
	// Deprecated: received objects are never dropped for a slow Accept.
	MaxAccept int
	// Linger bounds how long Close waits for the sender to flush when its
	// context has no deadline. 0 means 30 s.
	Linger time.Duration
}

// Loss describes injected packet loss: independent loss with probability
// Rate, or, with BurstLen > 1, Gilbert-Elliott bursts of that mean length
// averaging Rate.
type Loss struct {
	Rate     float64
	BurstLen float64
}

// ObjectInfo describes a received object when it starts.
type ObjectInfo struct {
	Sender uint32
	ID     uint16
	Kind   Kind
	Size   uint64
	Info   []byte
	// InfoExt holds the header extensions of the object's NORM_INFO (see
	// framing.Extensions.Find), once it arrived.
	InfoExt framing.Extensions
}

// Kind is the type of an object.
type Kind uint8

// Object kinds.
const (
	KindData Kind = iota + 1
	KindFile
	KindStream
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindFile:
		return "file"
	case KindStream:
		return "stream"
	}
	return "unknown"
}

// Errors returned by sessions.
var (
	ErrClosed = errors.New("session: closed")
	ErrConfig = errors.New("session: invalid configuration")
)
