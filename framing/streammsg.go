package framing

import "encoding/binary"

// Message framing inside a NORM stream (Shoal's message mode).
//
// A NORM stream carries bytes; its payload header marks only where the
// first message starting in a segment begins (payload_msg_start), so
// several messages in one segment, or a message whose end is not followed
// by another, cannot be told apart by NORM alone. A stream in message mode
// therefore frames every message inside the stream bytes:
//
//	+--------------------+--------------------+----------------------+
//	| sequence (32 bits) | length (32 bits)   | length bytes of data |
//	+--------------------+--------------------+----------------------+
//
// both fields big-endian. The sequence number counts the stream's messages
// from 0 (modulo 2^32), so a receiver that misses messages knows how many.
// The segment holding a message's first header byte has its
// payload_msg_start at (or before, for an earlier message of the same
// segment) that byte, so a receiver joining late or resuming after a gap
// finds the next message header at a payload_msg_start and parses from
// there. Messages follow each other with no padding. Ordinary NORM
// receivers (libnorm) see the framed bytes as stream data.
//
// When a Shoal sender closes a message-mode stream it writes one last
// header, the end of messages: its length is MsgEndLen (no data follows)
// and its sequence is the number of messages written, so a receiver can
// count messages lost at the very end, which no later message reports.
// It starts a message (payload_msg_start) like any other header. A reader
// that does not know it takes it for an oversized message, a framing
// error at the end of the stream.

// StreamPadding is the payload_msg_start of a padding segment: a stream
// segment with no data (payload_len 0) that a Shoal sender seals to close
// a FEC block before it has its k segments of data (time-bounded blocks,
// so that the block's parity can go out at once). Receivers skip it; its
// payload_offset is the stream offset of the data that follows. (A
// payload_len of 0 with any other payload_msg_start is the end of the
// stream.)
const StreamPadding = 0xFFFF

// MsgHeaderLen is the length of a message header in a message-mode stream.
const MsgHeaderLen = 8

// MsgEndLen is the length field of the end-of-messages header, whose Seq
// is the number of messages the stream carried.
const MsgEndLen = 0xFFFFFFFF

// MsgHeader is the header of one message in a message-mode stream.
type MsgHeader struct {
	Seq uint32 // the message's number in the stream, from 0
	Len uint32 // bytes of message data that follow the header
}

// AppendMsgHeader appends h in wire form to b.
func AppendMsgHeader(b []byte, h MsgHeader) []byte {
	b = binary.BigEndian.AppendUint32(b, h.Seq)
	return binary.BigEndian.AppendUint32(b, h.Len)
}

// ParseMsgHeader reads a message header from the first MsgHeaderLen bytes
// of p.
func ParseMsgHeader(p []byte) (MsgHeader, error) {
	if len(p) < MsgHeaderLen {
		return MsgHeader{}, perr(ErrTruncated, "stream message", "header", 0, MsgHeaderLen, len(p))
	}
	return MsgHeader{Seq: binary.BigEndian.Uint32(p), Len: binary.BigEndian.Uint32(p[4:])}, nil
}
