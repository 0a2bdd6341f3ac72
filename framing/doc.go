// Package framing is Shoal's wire codec for NORM, the NACK-Oriented Reliable
// Multicast protocol of RFC 5740. It sits at the bottom of the stack: the
// sender and receiver engines build and read every packet through it, and it
// imports nothing else of Shoal's and keeps no state.
//
// Each message type (Info, Data, Cmd, Nack, Ack, Report) has an Unmarshal
// method that parses into a caller-owned value and an Append method that
// encodes into a caller-owned buffer. Unmarshal does not copy: the byte
// slices it stores (Payload, Content, Ext) alias the packet, so a caller that
// reuses the packet buffer must finish with the message first. Neither
// direction allocates, which keeps the per-packet path of the engines free of
// garbage.
//
// Variable-length content stays in wire form and is read through small
// iterators (RepairRequests, Extensions.Next, Cmd.CCNode, ...) and written
// through Append helpers, so a NACK with hundreds of repair items costs no
// more than its bytes.
//
// Malformed input never panics: every parser checks lengths before reading
// and returns a *ParseError that wraps one of the sentinel errors
// (ErrTruncated, ErrVersion, ErrHeaderLength, ...) for errors.Is.
//
// Where the reference implementation (NRL NORM, libnorm) and the RFCs
// disagree on a byte, the codec follows the reference, because interoperating
// with deployed receivers is the point; each such place says so.
package framing
