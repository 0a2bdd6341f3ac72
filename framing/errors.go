package framing

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers can count or react to classes of bad input with errors.Is.
var (
	// ErrTruncated: the buffer ends before a field the message must have.
	ErrTruncated = errors.New("truncated")
	// ErrVersion: the NORM version field is not 1.
	ErrVersion = errors.New("unsupported NORM version")
	// ErrHeaderLength: hdr_len is smaller than the message type's fixed
	// header or larger than the packet.
	ErrHeaderLength = errors.New("bad header length")
	// ErrExtension: a header extension's length is zero, overruns the
	// header, or does not match what its type requires.
	ErrExtension = errors.New("bad header extension")
	// ErrContent: the message body (repair requests, node lists, ...) is
	// not a whole number of well-formed items.
	ErrContent = errors.New("bad message content")
	// ErrType: the message type or command flavor is not one RFC 5740
	// defines, or a message was handed to the parser of another type.
	ErrType = errors.New("unknown message type")
	// ErrFECID: the FEC encoding id has no payload id format this codec
	// knows (0, 2, 5 and 129 are supported).
	ErrFECID = errors.New("unsupported FEC encoding id")
	// ErrValue: a value given to an Append function does not fit its wire
	// field (only returned while encoding).
	ErrValue = errors.New("value out of range")
)

// ParseError says what is wrong with a message and where. It wraps one of the
// sentinel errors above.
type ParseError struct {
	Kind   error  // one of the sentinel errors
	Msg    string // message being parsed, e.g. "NORM_DATA"
	Field  string // field or part that failed, e.g. "fec_payload_id"
	Offset int    // byte offset of that field in the packet
	Need   int    // bytes (or value) the field needed; 0 if not applicable
	Have   int    // bytes (or value) found; 0 if not applicable
}

func (e *ParseError) Error() string {
	s := fmt.Sprintf("framing: %s: %v: %s at offset %d", e.Msg, e.Kind, e.Field, e.Offset)
	if e.Need != 0 || e.Have != 0 {
		s += fmt.Sprintf(" (need %d, have %d)", e.Need, e.Have)
	}
	return s
}

// Unwrap returns the sentinel error.
func (e *ParseError) Unwrap() error { return e.Kind }

func perr(kind error, msg, field string, off, need, have int) error {
	return &ParseError{Kind: kind, Msg: msg, Field: field, Offset: off, Need: need, Have: have}
}

func valueErr(msg, field string, v int) error {
	return &ParseError{Kind: ErrValue, Msg: msg, Field: field, Have: v}
}
