package framing

import (
	"encoding/binary"
	"strconv"
)

// Version is the NORM protocol version this codec reads and writes.
const Version = 1

// Type is the NORM message type of RFC 5740 §4.1.
type Type uint8

// Message types.
const (
	TypeInfo   Type = 1 // NORM_INFO: out-of-band object info (sender)
	TypeData   Type = 2 // NORM_DATA: source or parity symbols (sender)
	TypeCmd    Type = 3 // NORM_CMD: control, flavored (sender)
	TypeNack   Type = 4 // NORM_NACK: repair requests (receiver)
	TypeAck    Type = 5 // NORM_ACK: positive acks and CC feedback (receiver)
	TypeReport Type = 6 // NORM_REPORT: optional statistics (receiver)
)

var typeNames = [...]string{"INVALID", "INFO", "DATA", "CMD", "NACK", "ACK", "REPORT"}

// String returns the short name used by RFC 5740 without the NORM_ prefix
// ("DATA", "CMD", ...).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "TYPE(" + strconv.Itoa(int(t)) + ")"
}

// Header is the common message header of RFC 5740 §4.1, which every NORM
// message starts with. The version is always 1 and hdr_len is derived from
// the message when it is appended, so neither is stored.
type Header struct {
	Type     Type
	Sequence uint16 // per-source sequence number, for loss estimation
	SourceID uint32 // NormNodeId of the message's originator
}

const commonHeaderLen = 8

// Peek reads the common header of a packet and its hdr_len in bytes, so a
// caller can dispatch on the type. It checks the version and that hdr_len
// fits in b, but nothing type-specific.
func Peek(b []byte) (h Header, hdrLen int, err error) {
	if len(b) < commonHeaderLen {
		return h, 0, perr(ErrTruncated, "NORM", "common header", 0, commonHeaderLen, len(b))
	}
	if v := b[0] >> 4; v != Version {
		return h, 0, perr(ErrVersion, "NORM", "version", 0, Version, int(v))
	}
	h.Type = Type(b[0] & 0x0f)
	hdrLen = int(b[1]) * 4
	h.Sequence = binary.BigEndian.Uint16(b[2:])
	h.SourceID = binary.BigEndian.Uint32(b[4:])
	if hdrLen < commonHeaderLen || hdrLen > len(b) {
		return h, hdrLen, perr(ErrHeaderLength, "NORM", "hdr_len", 1, hdrLen, len(b))
	}
	return h, hdrLen, nil
}

// parseHeader is Peek plus the checks every typed parser needs: the right
// type and a hdr_len that covers the type's fixed header.
func parseHeader(b []byte, want Type, msg string, base int) (Header, int, error) {
	h, hdrLen, err := Peek(b)
	if err != nil {
		if pe, ok := err.(*ParseError); ok {
			pe.Msg = msg
		}
		return h, 0, err
	}
	if h.Type != want {
		return h, 0, perr(ErrType, msg, "type", 0, int(want), int(h.Type))
	}
	if len(b) < base {
		return h, 0, perr(ErrTruncated, msg, "header", 0, base, len(b))
	}
	if hdrLen < base {
		return h, 0, perr(ErrHeaderLength, msg, "hdr_len", 1, base, hdrLen)
	}
	return h, hdrLen, nil
}

// appendHeader writes the common header with a placeholder hdr_len that
// finishHeader fills once the extensions are known.
func appendHeader(b []byte, h Header, t Type) []byte {
	b = append(b, Version<<4|byte(t)&0x0f, 0)
	b = binary.BigEndian.AppendUint16(b, h.Sequence)
	return binary.BigEndian.AppendUint32(b, h.SourceID)
}

// finishHeader sets hdr_len of the message that starts at b[start:] to
// hdrLen bytes.
func finishHeader(b []byte, start, hdrLen int, msg string) error {
	if hdrLen%4 != 0 || hdrLen/4 > 255 {
		return valueErr(msg, "hdr_len", hdrLen)
	}
	b[start+1] = byte(hdrLen / 4)
	return nil
}

// SenderFields are the fields that every sender message (NORM_INFO,
// NORM_DATA, NORM_CMD) carries right after the common header: the sender's
// instance and the timing parameters receivers use for their NACK back-off
// (RFC 5740 §4.2). GRTT and GroupSize are quantized; see QuantizeRTT and
// QuantizeGroupSize.
type SenderFields struct {
	InstanceID uint16 // changes each time the sender restarts
	GRTT       uint8  // quantized group round-trip time (QuantizeRTT)
	Backoff    uint8  // back-off factor, 0-15
	GroupSize  uint8  // quantized group size estimate, 0-15 (QuantizeGroupSize)
}

func readSenderFields(b []byte) SenderFields {
	return SenderFields{
		InstanceID: binary.BigEndian.Uint16(b[8:]),
		GRTT:       b[10],
		Backoff:    b[11] >> 4,
		GroupSize:  b[11] & 0x0f,
	}
}

func appendSenderFields(b []byte, s SenderFields, msg string) ([]byte, error) {
	if s.Backoff > 15 {
		return b, valueErr(msg, "backoff", int(s.Backoff))
	}
	if s.GroupSize > 15 {
		return b, valueErr(msg, "gsize", int(s.GroupSize))
	}
	b = binary.BigEndian.AppendUint16(b, s.InstanceID)
	return append(b, s.GRTT, s.Backoff<<4|s.GroupSize), nil
}

// Timestamp is a time in the wire form NORM uses for GRTT probes and their
// echoes: seconds and microseconds, both 32 bits. Only differences between
// timestamps taken by the same clock mean anything.
type Timestamp struct {
	Sec  uint32
	Usec uint32
}

func readTimestamp(b []byte) Timestamp {
	return Timestamp{Sec: binary.BigEndian.Uint32(b), Usec: binary.BigEndian.Uint32(b[4:])}
}

func appendTimestamp(b []byte, t Timestamp) []byte {
	b = binary.BigEndian.AppendUint32(b, t.Sec)
	return binary.BigEndian.AppendUint32(b, t.Usec)
}
