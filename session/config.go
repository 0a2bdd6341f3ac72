package session

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
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
	NodeID NodeID
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
	// otherwise uses where the kernel supports it (Linux), or where
	// Config.Conn implements GSOWriter.
	DisableGSO bool
	// SendOnly makes a session that only sends. It takes from the group
	// only the feedback senders get (NORM_NACK and NORM_ACK) and keeps no
	// state for other senders: Accept and the receive side get nothing.
	// On Linux, for a socket the session opens (not Config.Conn) and
	// without Security, a socket filter drops the rest in the kernel,
	// feedback to other senders and this session's own packets looped back
	// included, so they do not even wake the session. Any host on the group can send
	// under any sender id, and a session that also receives pays for each
	// such packet (a forged sender's blocks and NACK cycles); one that
	// only sends does not.
	SendOnly bool
	// ReadCoalesce, if set, lets received packets gather in the socket
	// for up to this long after a read that found some, so that a
	// receiver at a high packet rate wakes up and reads once per batch
	// rather than every few packets: each wake-up costs more CPU than the
	// packets it reads. Packets wait that much longer (their kernel
	// receive times still count for round-trip times), and so may a Send
	// or Close. For bulk receivers (filecast recv uses 500µs); 0 reads as
	// soon as a packet is there.
	ReadCoalesce time.Duration

	// Sender configures sending; see package sender for each field. Rate
	// 0 means sender.DefaultRate (10 MB/s), or with CC set the congestion
	// controller's start rate. The session sets NodeID (from
	// Config.NodeID) and Rand (from Config.Seed): New refuses a Sender
	// with either set.
	Sender sender.Config
	// Receiver configures receiving; see package receiver. The session
	// sets NodeID (Config.NodeID), Rand (Config.Seed), Sink (Config.Dir or
	// Config.FileSink) and ConfirmHeld (always on): New refuses a Receiver
	// with NodeID, Rand or Sink set.
	Receiver receiver.Config
	// Dir, if set, is where received file objects are written: as a
	// temporary file, renamed to the sender's info (a relative path,
	// checked) when complete. Without Dir, files are kept in memory like
	// data objects.
	Dir string
	// FileSink, if set, is asked for a destination for every received file
	// object instead (it wins over Dir). It and the WriterAt it returns run
	// on the session's disk-writer goroutine, never under the session's
	// lock: they may block (the session stops reading packets once 32 MiB
	// wait for them) and may call the Session. An error, from FileSink or
	// a write, fails the object (ObjectAborted) when it completes; a nil
	// WriterAt keeps the file in memory (Object.Bytes). The object is
	// complete, and Wait returns, once every write has returned.
	FileSink func(ObjectInfo) (io.WriterAt, error)

	// Conn, if set, is the session's packet I/O instead of the UDP socket
	// New would open (see Listen): an in-memory network for tests
	// (package sessiontest), a socket wrapped to inject loss
	// (NewLossConn), or a transport of your own. The session sends to
	// Group through it and filters by Source; Interface, TTL,
	// DisableLoopback, ReadBuffer and WriteBuffer apply only to the
	// socket New opens. The session owns Conn from New on and closes it
	// when it ends, or when New fails.
	Conn PacketConn

	// Security, if set, authenticates every packet this session sends with
	// a group key and/or a signature, optionally encrypts payloads, and
	// drops every received packet that fails its checks or replays an old
	// one, before the engines see it (see package secure; nodes need
	// clocks within Security.MaxSkew). Every member of the group needs
	// it. Nil, the default, leaves packets byte for byte as the reference
	// implementation sends them, and drops received packets that carry
	// EXT_AUTH. SecurityStats counts what was refused.
	Security *secure.Config

	// Logger receives the session's log; nil means silent.
	Logger *slog.Logger
	// Tracer, if set, is called as packets, NACKs, repairs and rate and
	// GRTT changes happen (see Tracer).
	Tracer *Tracer
	// Seed seeds the engines' randomness (back-off timers, instance id).
	// 0 means a random seed.
	Seed uint64
	// EventBuffer, if positive, is the capacity of the channel that
	// Session.Events returns (default 1024). Events that find it full are
	// counted in Stats.EventsDropped and dropped.
	EventBuffer int
	// MaxAccept is no longer used: objects wait for Accept without a
	// bound on their count (see Session.Accept for the memory bound).
	//
	// Deprecated: received objects are never dropped for a slow Accept.
	MaxAccept int
	// Linger bounds how long Close waits for the sender to flush when its
	// context has no deadline. 0 means 30 s.
	Linger time.Duration
}

// NodeID identifies a node of a session in NORM messages (NORM's
// source_id). It prints as 8 hexadecimal digits.
type NodeID uint32

func (n NodeID) String() string { return fmt.Sprintf("%08x", uint32(n)) }

// ObjectID identifies an object among those of its sender (NORM's
// transport object id): a 16-bit serial number that wraps around. It
// prints in decimal.
type ObjectID uint16

func (id ObjectID) String() string { return strconv.Itoa(int(id)) }

// ObjectInfo describes a received object when it starts.
type ObjectInfo struct {
	Sender NodeID
	ID     ObjectID
	Kind   Kind
	Size   uint64
	Info   []byte
	// InfoExt holds the header extensions of the object's NORM_INFO (see
	// framing.Extensions.Find), once it arrived.
	InfoExt framing.Extensions
}

// Kind is the type of an object: one type with sender.Kind and
// receiver.ObjectInfo.Kind.
type Kind = framing.ObjectKind

// Object kinds.
const (
	KindData   = framing.ObjectData
	KindFile   = framing.ObjectFile
	KindStream = framing.ObjectStream
)

// Errors returned by sessions.
var (
	// ErrClosed is returned by calls on a session that has closed or died
	// (Session.Err says why), and by Read on an Object after its Close. errors.Is(ErrClosed, net.ErrClosed) holds, so
	// code written for net.Conn recognises it.
	ErrClosed error = closedError{}
	// ErrConfig wraps every configuration error, together with the
	// engine's own (sender.ErrConfig, receiver.ErrConfig) where it has one.
	ErrConfig = errors.New("session: invalid configuration")
	// ErrNotStream is returned by Object.Read on a data or file object:
	// only streams are read; the others are whole at Wait (Bytes, Path).
	ErrNotStream = errors.New("session: object is not a stream")
)

type closedError struct{}

func (closedError) Error() string { return "session: closed" }
func (closedError) Unwrap() error { return net.ErrClosed }

// checkEngineFields refuses engine settings that the session owns, which
// it would otherwise overwrite without a word.
func checkEngineFields(cfg *Config) error {
	switch {
	case cfg.Sender.NodeID != 0, cfg.Receiver.NodeID != 0:
		return fmt.Errorf("%w: set Config.NodeID, not Sender.NodeID or Receiver.NodeID", ErrConfig)
	case cfg.Sender.Rand != nil, cfg.Receiver.Rand != nil:
		return fmt.Errorf("%w: set Config.Seed, not Sender.Rand or Receiver.Rand", ErrConfig)
	case cfg.Receiver.Sink != nil:
		return fmt.Errorf("%w: set Config.FileSink or Config.Dir, not Receiver.Sink", ErrConfig)
	}
	return nil
}
