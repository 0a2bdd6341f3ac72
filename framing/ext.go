package framing

import "encoding/binary"

// Header extension types (RFC 5740 §4.1 and §5.5).
const (
	ExtFTI    uint8 = 64  // EXT_FTI: FEC object transmission information
	ExtCC     uint8 = 3   // EXT_CC: congestion control feedback (receivers)
	ExtRate   uint8 = 128 // EXT_RATE: the sender's current rate
	ExtAppAck uint8 = 65  // reference implementation's application ACK payload
	ExtPace   uint8 = 101 // Shoal's receiver pace report (see Pace)
)

// Extensions is the header extension area of a message, in wire form: the
// bytes between the type's fixed header and hdr_len. Unmarshal checks that it
// is a well-formed sequence of extensions; extensions this codec does not know
// are kept as they are, so a message re-appended from a parsed value carries
// them through unchanged.
type Extensions []byte

// Extension is one header extension: its type (het) and its bytes, including
// the het and hel octets.
type Extension struct {
	Type uint8
	Raw  []byte
}

// Body returns the extension's content after the het and (for variable
// length types) hel octets.
func (x Extension) Body() []byte {
	if x.Type >= 128 {
		return x.Raw[1:]
	}
	return x.Raw[2:]
}

// extLen returns the length of the extension at b[0:], or -1 if it is
// malformed. Types 128-255 are one word long; others give their length in
// words in hel (RFC 5740 §4.1).
func extLen(b []byte) int {
	if len(b) < 4 {
		return -1
	}
	if b[0] >= 128 {
		return 4
	}
	n := int(b[1]) * 4
	if n == 0 || n > len(b) {
		return -1
	}
	return n
}

// validate checks the whole area. off is the area's offset in the packet,
// for the error.
func (e Extensions) validate(msg string, off int) error {
	for i := 0; i < len(e); {
		n := extLen(e[i:])
		if n < 0 {
			return perr(ErrExtension, msg, "header extension length", off+i, 4, len(e)-i)
		}
		// Known types have a fixed size; a wrong one would make the typed
		// accessors read the wrong bytes.
		switch e[i] {
		case ExtFTI:
			if n < 12 {
				return perr(ErrExtension, msg, "EXT_FTI length", off+i, 12, n)
			}
		case ExtCC:
			if n < 12 {
				return perr(ErrExtension, msg, "EXT_CC length", off+i, 12, n)
			}
		}
		i += n
	}
	return nil
}

// Check reports whether the area is a well-formed sequence of header
// extensions, as Unmarshal requires of received messages.
func (e Extensions) Check() error { return e.validate("header extensions", 0) }

// Next returns the extension at offset off and the offset of the one after
// it; ok is false at the end of the area or if the area is malformed. Use it
// as:
//
//	for x, off, ok := e.Next(0); ok; x, off, ok = e.Next(off) { ... }
func (e Extensions) Next(off int) (x Extension, next int, ok bool) {
	if off < 0 || off >= len(e) {
		return x, off, false
	}
	n := extLen(e[off:])
	if n < 0 {
		return x, off, false
	}
	return Extension{Type: e[off], Raw: e[off : off+n]}, off + n, true
}

// Find returns the first extension of type t.
func (e Extensions) Find(t uint8) (Extension, bool) {
	for x, off, ok := e.Next(0); ok; x, off, ok = e.Next(off) {
		if x.Type == t {
			return x, true
		}
	}
	return Extension{}, false
}

// AppendExtension appends a raw extension (het, hel and content) to an
// extension area after checking that its length is consistent.
func AppendExtension(e Extensions, raw []byte) (Extensions, error) {
	if n := extLen(raw); n != len(raw) {
		return e, valueErr("header extension", "length", len(raw))
	}
	return append(e, raw...), nil
}

// FTI is the FEC Object Transmission Information carried in EXT_FTI: what a
// receiver needs to size buffers and decode an object. Which fields are on
// the wire depends on the FEC encoding id; the others are ignored when
// appending and zero after parsing.
//
//	FEC id 0   (RFC 5445 compact no-code): TransferLength, SymbolLength, MaxBlockLen
//	FEC id 2   (RFC 5510, m-bit RS):       TransferLength, M, G, SymbolLength, MaxBlockLen, Parity
//	FEC id 5   (RFC 5510, 8-bit RS):       TransferLength, SymbolLength, MaxBlockLen, Parity
//	FEC id 129 (RFC 5445 small block):     TransferLength, InstanceID, SymbolLength, MaxBlockLen, Parity
type FTI struct {
	TransferLength uint64 // object size in bytes, below 2^48
	SymbolLength   uint16 // segment size in bytes
	MaxBlockLen    uint32 // source symbols per block (k)
	// Parity is the number of parity symbols per block. For FEC id 5
	// RFC 5510 calls this byte the maximum number of encoding symbols
	// (k+p), but the reference implementation writes the parity count (0
	// without FEC); Shoal follows the reference so both read it alike.
	Parity     uint16
	M          uint8  // FEC id 2: bits per RS symbol (8 or 16)
	G          uint8  // FEC id 2: symbols per packet (1)
	InstanceID uint16 // FEC id 129: FEC instance id
}

const maxTransferLength = 1<<48 - 1

// FTI decodes the object's EXT_FTI for the given FEC encoding id. ok is false
// if the area has no EXT_FTI.
func (e Extensions) FTI(fecID uint8) (f FTI, ok bool, err error) {
	x, ok := e.Find(ExtFTI)
	if !ok {
		return f, false, nil
	}
	b := x.Raw
	if len(b) < ftiLen(fecID) || ftiLen(fecID) == 0 {
		if ftiLen(fecID) == 0 {
			return f, true, perr(ErrFECID, "EXT_FTI", "fec_id", 0, 0, int(fecID))
		}
		return f, true, perr(ErrExtension, "EXT_FTI", "length", 0, ftiLen(fecID), len(b))
	}
	f.TransferLength = uint64(binary.BigEndian.Uint16(b[2:]))<<32 | uint64(binary.BigEndian.Uint32(b[4:]))
	switch fecID {
	case 0:
		f.SymbolLength = binary.BigEndian.Uint16(b[10:])
		f.MaxBlockLen = binary.BigEndian.Uint32(b[12:])
	case 2:
		// The reference puts m and G before the symbol length; RFC 5510
		// §5.2 puts the symbol length first. Interop wins.
		f.M, f.G = b[8], b[9]
		f.SymbolLength = binary.BigEndian.Uint16(b[10:])
		f.MaxBlockLen = uint32(binary.BigEndian.Uint16(b[12:]))
		f.Parity = binary.BigEndian.Uint16(b[14:])
	case 5:
		f.SymbolLength = binary.BigEndian.Uint16(b[8:])
		f.MaxBlockLen = uint32(b[10])
		f.Parity = uint16(b[11])
	case 129:
		f.InstanceID = binary.BigEndian.Uint16(b[8:])
		f.SymbolLength = binary.BigEndian.Uint16(b[10:])
		f.MaxBlockLen = uint32(binary.BigEndian.Uint16(b[12:]))
		f.Parity = binary.BigEndian.Uint16(b[14:])
	}
	return f, true, nil
}

func ftiLen(fecID uint8) int {
	switch fecID {
	case 5:
		return 12
	case 0, 2, 129:
		return 16
	}
	return 0
}

// AppendFTI appends an EXT_FTI for the given FEC encoding id.
func AppendFTI(e Extensions, fecID uint8, f FTI) (Extensions, error) {
	const msg = "EXT_FTI"
	n := ftiLen(fecID)
	if n == 0 {
		return e, valueErr(msg, "fec_id", int(fecID))
	}
	if f.TransferLength > maxTransferLength {
		return e, valueErr(msg, "transfer length", -1)
	}
	switch fecID {
	case 2, 129:
		if f.MaxBlockLen > 0xffff {
			return e, valueErr(msg, "max source block length", int(f.MaxBlockLen))
		}
	case 5:
		if f.MaxBlockLen > 0xff {
			return e, valueErr(msg, "max source block length", int(f.MaxBlockLen))
		}
		if f.Parity > 0xff {
			return e, valueErr(msg, "parity", int(f.Parity))
		}
	}
	e = append(e, ExtFTI, byte(n/4))
	e = binary.BigEndian.AppendUint16(e, uint16(f.TransferLength>>32))
	e = binary.BigEndian.AppendUint32(e, uint32(f.TransferLength))
	switch fecID {
	case 0:
		e = append(e, 0, 0)
		e = binary.BigEndian.AppendUint16(e, f.SymbolLength)
		e = binary.BigEndian.AppendUint32(e, f.MaxBlockLen)
	case 2:
		e = append(e, f.M, f.G)
		e = binary.BigEndian.AppendUint16(e, f.SymbolLength)
		e = binary.BigEndian.AppendUint16(e, uint16(f.MaxBlockLen))
		e = binary.BigEndian.AppendUint16(e, f.Parity)
	case 5:
		e = binary.BigEndian.AppendUint16(e, f.SymbolLength)
		e = append(e, byte(f.MaxBlockLen), byte(f.Parity))
	case 129:
		e = binary.BigEndian.AppendUint16(e, f.InstanceID)
		e = binary.BigEndian.AppendUint16(e, f.SymbolLength)
		e = binary.BigEndian.AppendUint16(e, uint16(f.MaxBlockLen))
		e = binary.BigEndian.AppendUint16(e, f.Parity)
	}
	return e, nil
}

// CCFlags are the NORM-CC flags of EXT_CC and of CMD(CC) node entries
// (RFC 5740 §4.2.3.3).
type CCFlags uint8

// NORM-CC flags.
const (
	CCFlagCLR   CCFlags = 0x01 // the node is the current limiting receiver
	CCFlagPLR   CCFlags = 0x02 // the node is a potential limiting receiver
	CCFlagRTT   CCFlags = 0x04 // the RTT was measured, not estimated
	CCFlagStart CCFlags = 0x08 // the node is in slow start
	CCFlagLeave CCFlags = 0x10 // the node is leaving the group
	// CCFlagLimit is a reference-implementation extra (not in RFC 5740):
	// the node's rate is limited by its own receive capacity. Tolerated,
	// not required.
	CCFlagLimit CCFlags = 0x20
)

// CCFeedback is the content of EXT_CC, the congestion control feedback a
// receiver attaches to NORM_ACK(CC) and NORM_NACK (RFC 5740 §4.3.1).
type CCFeedback struct {
	Sequence uint16  // cc_sequence of the CMD(CC) probe being answered
	Flags    CCFlags // CLR, PLR, RTT, START, LEAVE
	RTT      uint8   // quantized RTT (QuantizeRTT)
	Loss     uint16  // quantized loss event fraction (QuantizeLoss)
	Rate     uint16  // quantized calculated rate (QuantizeRate)
	// LossExt is the field RFC 5740 reserves; the reference implementation
	// sends the low 16 bits of a 32-bit loss estimate there (Loss being the
	// high 16 bits). Use Loss32 to read both.
	LossExt uint16
}

// Loss32 returns the 32-bit loss estimate formed by Loss and LossExt.
func (c CCFeedback) Loss32() uint32 { return uint32(c.Loss)<<16 | uint32(c.LossExt) }

// CC decodes the area's EXT_CC. ok is false if there is none.
func (e Extensions) CC() (c CCFeedback, ok bool) {
	x, ok := e.Find(ExtCC)
	if !ok || len(x.Raw) < 12 {
		return c, false
	}
	b := x.Raw
	return CCFeedback{
		Sequence: binary.BigEndian.Uint16(b[2:]),
		Flags:    CCFlags(b[4]),
		RTT:      b[5],
		Loss:     binary.BigEndian.Uint16(b[6:]),
		Rate:     binary.BigEndian.Uint16(b[8:]),
		LossExt:  binary.BigEndian.Uint16(b[10:]),
	}, true
}

// AppendCC appends an EXT_CC.
func AppendCC(e Extensions, c CCFeedback) Extensions {
	e = append(e, ExtCC, 3)
	e = binary.BigEndian.AppendUint16(e, c.Sequence)
	e = append(e, byte(c.Flags), c.RTT)
	e = binary.BigEndian.AppendUint16(e, c.Loss)
	e = binary.BigEndian.AppendUint16(e, c.Rate)
	return binary.BigEndian.AppendUint16(e, c.LossExt)
}

// Rate returns the quantized send rate of the area's EXT_RATE (see
// UnquantizeRate). ok is false if there is none.
func (e Extensions) Rate() (rate uint16, ok bool) {
	x, ok := e.Find(ExtRate)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint16(x.Raw[2:]), true
}

// AppendRate appends an EXT_RATE with a quantized send rate.
func AppendRate(e Extensions, rate uint16) Extensions {
	e = append(e, ExtRate, 0)
	return binary.BigEndian.AppendUint16(e, rate)
}

// Pace is Shoal's receiver pace report, carried in EXT_PACE, a private
// header extension that other NORM implementations skip. A receiver tells
// the sender how long packets wait in its socket before it handles them
// (Delay, quantized like a GRTT) and how fast it is handling them (Rate,
// bytes per second, quantized like cc_rate). A sender puts an empty one
// (both zero) in its probes to say that it listens to such reports.
//
// Wire form: het 101, hel 2 (8 bytes): delay (1 byte), flags (1 byte),
// rate (2 bytes), reserved (2 bytes, zero).
type Pace struct {
	Delay uint8  // QuantizeRTT of the socket wait; 0 in a sender's marker
	Flags uint8  // PaceTrack in a sender's marker
	Rate  uint16 // QuantizeRate of the handling rate; 0 if unknown
}

// PaceTrack in a sender's EXT_PACE marker says that the sender tracks its
// receivers (for positive acknowledgement): each receiver answers the
// first probes it hears even if another receiver's answer was overheard,
// so that the sender learns of every one of them.
const PaceTrack uint8 = 1

// Pace decodes the area's EXT_PACE. ok is false if there is none.
func (e Extensions) Pace() (p Pace, ok bool) {
	x, ok := e.Find(ExtPace)
	if !ok || len(x.Raw) < 8 {
		return p, false
	}
	return Pace{Delay: x.Raw[2], Flags: x.Raw[3], Rate: binary.BigEndian.Uint16(x.Raw[4:])}, true
}

// AppendPace appends an EXT_PACE.
func AppendPace(e Extensions, p Pace) Extensions {
	e = append(e, ExtPace, 2, p.Delay, p.Flags)
	e = binary.BigEndian.AppendUint16(e, p.Rate)
	return append(e, 0, 0)
}
